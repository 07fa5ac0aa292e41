"""API tokens: create (the secret is shown once), authenticate, revoke, list.

Only the SHA-256 digest of a token is stored (:mod:`crm_core.security`); the
audit trail records who created or revoked which token (by id and public
prefix), never the token or its digest. Users manage their own tokens; managing
another user's tokens needs ``user.admin``; the system (``actor=None``) may do all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, Select, Update, bindparam, inspect, or_, select, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from crm_core.authz import has_permission
from crm_core.db import utcnow
from crm_core.errors import NotFoundError, PermissionDenied, ValidationError
from crm_core.i18n import N_
from crm_core.models import ApiToken, Role, Team, User, user_roles
from crm_core.security import (
    ScopedActor,
    generate_token,
    hash_token,
    looks_like_token,
    token_prefix,
)
from crm_core.services.unit_of_work import UnitOfWork

ADMIN_PERMISSION = "user.admin"
MAX_NAME_LENGTH = 120
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
"""``last_used_at`` is written at most this often per token, not on every request."""


def may_manage(actor: Any, user_id: int) -> bool:
    """Whether ``actor`` may manage the tokens of user ``user_id``: their own, or as admin."""
    return actor is None or actor.id == user_id or has_permission(actor, ADMIN_PERMISSION)


def create(
    uow: UnitOfWork,
    user: User,
    *,
    name: str = "",
    scopes: Iterable[str] = (),
    expires_at: dt.datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; return it and the plain token, which is never stored.

    ``scopes`` are permission names the token is limited to (empty: every permission
    the user holds, now and later). Each must be a registered permission the user
    holds, and an actor acting through a scoped token cannot mint a wider one for
    itself. ``expires_at`` (timezone-aware, in the future) or ``None`` for no expiry.
    Raises :class:`ValidationError` (fields ``name``, ``scopes``, ``expires_at``,
    ``user``) or :class:`PermissionDenied`.
    """
    if not may_manage(uow.actor, user.id):
        raise PermissionDenied(f"you need the permission {ADMIN_PERMISSION!r}")
    wanted = sorted(set(scopes))
    errors = _check(uow, user, name, wanted, expires_at)
    if errors:
        raise ValidationError(errors)
    plain = generate_token()
    token = ApiToken(
        user_id=user.id,
        name=name.strip(),
        token_hash=hash_token(plain),
        prefix=token_prefix(plain),
        scopes=wanted,
        expires_at=expires_at,
    )
    uow.session.add(token)
    uow.session.flush()
    changes = {
        "user_id": (None, user.id),
        "name": (None, token.name),
        "prefix": (None, token.prefix),
        "scopes": (None, wanted),
        "expires_at": (None, expires_at),
    }
    uow.record("api_token", "created", [(token.id, changes)])
    return token, plain


def _check(
    uow: UnitOfWork,
    user: User,
    name: str,
    scopes: list[str],
    expires_at: dt.datetime | None,
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if len(name.strip()) > MAX_NAME_LENGTH:
        errors["name"] = [f"Use at most {MAX_NAME_LENGTH} characters."]
    if not user.active:
        errors["user"] = [N_("The user is deactivated.")]
    unknown = [scope for scope in scopes if scope not in uow.crm.registry.permissions]
    held = user.permissions
    not_held = [scope for scope in scopes if scope not in unknown and scope not in held]
    scope_errors = []
    if unknown:
        scope_errors.append(f"No such permission: {', '.join(unknown)}.")
    if not_held:
        scope_errors.append(f"The user does not hold: {', '.join(not_held)}.")
    actor = uow.actor
    if not scope_errors and actor is not None and actor.id == user.id:
        # Acting through a scoped token: the new token may not reach further than it.
        granted = set(scopes) if scopes else held
        beyond = sorted(granted - actor.permissions)
        if beyond:
            scope_errors.append(
                "Your current credentials do not allow granting: " + ", ".join(beyond) + "."
            )
    if scope_errors:
        errors["scopes"] = scope_errors
    if expires_at is not None:
        if expires_at.tzinfo is None:
            errors["expires_at"] = [N_("Give a timezone-aware time.")]
        elif expires_at <= utcnow():
            errors["expires_at"] = [N_("Choose a time in the future.")]
    return errors


def authenticate(session: Session, token: str, now: dt.datetime) -> ApiToken | None:
    """The usable token whose digest matches ``token``, with its user loaded; else ``None``.

    Malformed, unknown, expired and revoked tokens, and tokens of deactivated users,
    all give ``None``. ``last_used_at`` is updated at most once per
    :data:`LAST_USED_RESOLUTION` (the caller commits ``session``), so a busy client
    does not turn every request into a write.
    """
    if not looks_like_token(token):
        return None
    found = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if found is None or not usable(found.revoked_at, found.expires_at, found.user.active, now):
        return None
    if is_stale(found.last_used_at, now):
        found.last_used_at = now
    return found


def usable(
    revoked_at: dt.datetime | None, expires_at: dt.datetime | None, active: bool, now: dt.datetime
) -> bool:
    """The rule for a token at ``now``: not revoked, not expired, and its user active."""
    return revoked_at is None and active and (expires_at is None or now < expires_at)


def is_stale(last_used_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a token last used at ``last_used_at`` should have ``now`` recorded instead."""
    return last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION


# -- the per-request path ----------------------------------------------------------------
# find_actor runs on every API request, so it reads token, user, team and roles with one
# Core query (a row per role) and builds detached ORM objects from the rows: several times
# cheaper than loading them through the ORM, with the same result. It never writes: the
# web layer records the use (touch) apart from the request's own work.

_Columns = list[tuple[str, Any]]
"""``(attribute name, column)`` of a model's mapped columns."""


class TokenUse(NamedTuple):
    """The actor a token authenticates, and when the token was used before (``None``: never)."""

    actor: ScopedActor
    token_id: int
    last_used_at: dt.datetime | None


@dataclass(frozen=True)
class _Queries:
    user_columns: _Columns
    team_columns: _Columns
    role_columns: _Columns
    actor: Select[Any]
    touch: Update


@cache
def _queries() -> _Queries:
    """Built on first use, not at import, so that mappers are configured by then."""
    token = ApiToken.__table__
    users, teams, roles = User.__table__, Team.__table__, Role.__table__

    def columns(model: type[Any]) -> _Columns:
        return [(attr.key, attr.columns[0]) for attr in inspect(model).column_attrs]

    user_columns, team_columns, role_columns = columns(User), columns(Team), columns(Role)
    actor = (
        select(
            token.c.id.label("token__id"),
            token.c.scopes.label("token__scopes"),
            token.c.expires_at.label("token__expires_at"),
            token.c.revoked_at.label("token__revoked_at"),
            token.c.last_used_at.label("token__last_used_at"),
            *(column.label(f"user__{key}") for key, column in user_columns),
            *(column.label(f"team__{key}") for key, column in team_columns),
            *(column.label(f"role__{key}") for key, column in role_columns),
        )
        .select_from(token)
        .join(users, users.c.id == token.c.user_id)
        .outerjoin(teams, teams.c.id == users.c.team_id)
        .outerjoin(user_roles, user_roles.c.user_id == users.c.id)
        .outerjoin(roles, roles.c.id == user_roles.c.role_id)
        .where(token.c.token_hash == bindparam("token_hash"))
        .order_by(roles.c.id)
    )
    touch = (
        update(token)
        .where(
            token.c.id == bindparam("token_id"),
            or_(token.c.last_used_at.is_(None), token.c.last_used_at <= bindparam("stale_at")),
        )
        .values(last_used_at=bindparam("now"))
    )
    return _Queries(user_columns, team_columns, role_columns, actor, touch)


def find_actor(connection: Connection, token: str, now: dt.datetime) -> TokenUse | None:
    """The actor ``token`` authenticates at ``now`` (:func:`authenticate`'s rules), or ``None``.

    One query, no write. The actor's ``user`` is a complete detached
    :class:`~crm_core.models.User` (roles and team loaded). When
    :func:`is_stale` says so for :attr:`TokenUse.last_used_at`, record the use with
    :func:`touch`.
    """
    if not looks_like_token(token):
        return None
    queries = _queries()
    rows = connection.execute(queries.actor, {"token_hash": hash_token(token)}).all()
    if not rows:
        return None
    fields = rows[0]._mapping
    if not usable(
        fields["token__revoked_at"], fields["token__expires_at"], fields["user__active"], now
    ):
        return None
    user = _detached_user(queries, rows)
    actor = ScopedActor(user, fields["token__scopes"], token_id=fields["token__id"])
    return TokenUse(actor, fields["token__id"], fields["token__last_used_at"])


def touch(connection: Connection, token_id: int, now: dt.datetime) -> None:
    """Set the token's ``last_used_at`` to ``now``, unless another request just did.

    One ``UPDATE``, a no-op when the stored time is less than
    :data:`LAST_USED_RESOLUTION` old; the caller commits.
    """
    connection.execute(
        _queries().touch,
        {"token_id": token_id, "now": now, "stale_at": now - LAST_USED_RESOLUTION},
    )


def authenticate_actor(session: Session, token: str, now: dt.datetime) -> ScopedActor | None:
    """The actor a request with ``token`` acts as, or ``None``: :func:`authenticate`'s rules.

    :func:`find_actor`, then :func:`touch` when due, on ``session``'s connection
    (the caller commits ``session``).
    """
    connection = session.connection()
    found = find_actor(connection, token, now)
    if found is None:
        return None
    if is_stale(found.last_used_at, now):
        touch(connection, found.token_id, now)
    return found.actor


def _detached_user(queries: _Queries, rows: list[Row[Any]]) -> User:
    """A User (with roles and team) built from rows, as if loaded and then expunged."""
    fields = rows[0]._mapping
    user = User(**{key: fields[f"user__{key}"] for key, _ in queries.user_columns})
    roles = []
    for row in rows:
        values = row._mapping
        if values["role__id"] is None:
            continue
        role = Role(**{key: values[f"role__{key}"] for key, _ in queries.role_columns})
        make_transient_to_detached(role)
        roles.append(role)
    team = None
    if fields["team__id"] is not None:
        team = Team(**{key: fields[f"team__{key}"] for key, _ in queries.team_columns})
        make_transient_to_detached(team)
    # As loaded, not as changed: no change events to run.
    set_committed_value(user, "roles", roles)
    set_committed_value(user, "team", team)
    make_transient_to_detached(user)
    return user


def get(uow: UnitOfWork, token_id: int) -> ApiToken:
    """Token ``token_id`` if the actor may manage it; :class:`NotFoundError` otherwise."""
    token = uow.session.get(ApiToken, token_id)
    if token is None or not may_manage(uow.actor, token.user_id):
        raise NotFoundError("api_token", token_id)
    return token


def revoke(uow: UnitOfWork, token_id: int) -> ApiToken:
    """Revoke token ``token_id`` now; revoking a revoked token changes nothing.

    Another user's token is :class:`NotFoundError` without ``user.admin``, as if it
    did not exist.
    """
    token = get(uow, token_id)
    if token.revoked_at is not None:
        return token
    token.revoked_at = utcnow()
    uow.session.flush()
    uow.record("api_token", "revoked", [(token.id, {"revoked_at": (None, token.revoked_at)})])
    return token


def list_for(uow: UnitOfWork, user: User) -> list[ApiToken]:
    """Every token of ``user`` (revoked and expired ones too), newest first."""
    if not may_manage(uow.actor, user.id):
        raise PermissionDenied(f"you need the permission {ADMIN_PERMISSION!r}")
    statement = (
        select(ApiToken)
        .where(ApiToken.user_id == user.id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return list(uow.session.scalars(statement))
