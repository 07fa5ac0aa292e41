"""Users and roles: staff accounts (create, change, deactivate), roles, and signing in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import cache
from typing import Any

from marshmallow import Schema, fields, validate
from marshmallow import ValidationError as SchemaError
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from crm_core.authz import require
from crm_core.db import utcnow
from crm_core.errors import NotFoundError, PermissionDenied, ValidationError
from crm_core.i18n import N_
from crm_core.ids import as_record_id
from crm_core.languages import LANGUAGES
from crm_core.models import Role, Team, User, Visibility
from crm_core.schemas import load_or_refuse
from crm_core.schemas.fieldtypes import EmailAddress, RequiredText, Text
from crm_core.services.unit_of_work import UnitOfWork

MIN_PASSWORD_LENGTH = 8
MAX_FAILED_LOGINS = 5
"""Failed sign-ins in a row after which an account is locked for :data:`LOCKOUT`."""
LOCKOUT = dt.timedelta(minutes=15)


class UserSchema(Schema):
    """A new staff account."""

    email = EmailAddress(required=True)
    name = Text(max_length=200, load_default="")
    password = fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(
            min=MIN_PASSWORD_LENGTH, error=f"Use at least {MIN_PASSWORD_LENGTH} characters."
        ),
    )
    roles = fields.List(fields.String(), load_default=list)
    active = fields.Boolean(load_default=True)


class ProfileSchema(Schema):
    """What users change about themselves: their name and the UI's language."""

    name = Text(max_length=200)
    language = fields.String(
        allow_none=True,
        validate=validate.OneOf(
            ["", *LANGUAGES],
            error=f"Use one of: {', '.join(LANGUAGES)} (or none: the browser's).",
        ),
    )


class UserChangeSchema(ProfileSchema):
    """A change to a staff account: only the fields given change (never email or password)."""

    roles = fields.List(fields.String())
    team_id = fields.Integer(allow_none=True)


class RoleSchema(Schema):
    """A role: a unique name, a description, permissions and which records its users see."""

    name = RequiredText(max_length=80)
    description = Text(max_length=500, load_default="")
    permissions = fields.List(fields.String(), load_default=list)
    visibility = fields.String(
        load_default=Visibility.ALL.value,
        validate=validate.OneOf(
            [level.value for level in Visibility], error=N_("Use one of: own, team, all.")
        ),
    )


ADMIN_PERMISSION = "user.admin"


def default_roles(permissions: list[str]) -> dict[str, tuple[str, list[str]]]:
    """The roles a new installation starts with, from the registered permissions."""
    viewing = [p for p in permissions if p.endswith(".view")]
    working = [p for p in permissions if not p.endswith((".admin", ".merge"))]
    return {
        "admin": ("Everything, including users, roles and plugins", permissions),
        "sales": ("Works with customers, contacts and interactions", working),
        "viewer": ("Reads, never writes", viewing),
    }


def ensure_default_roles(uow: UnitOfWork) -> list[Role]:
    """Create the ``admin``, ``sales`` and ``viewer`` roles that don't exist yet."""
    require(uow.actor, "user.admin")
    permissions = sorted(uow.crm.registry.permissions)
    present = {role.name for role in uow.session.scalars(select(Role))}
    created = []
    for name, (description, granted) in default_roles(permissions).items():
        if name in present:
            continue
        role = Role(name=name, description=description, permissions=granted)
        uow.session.add(role)
        created.append(role)
    uow.session.flush()
    uow.record("role", "created", [(r.id, {"name": (None, r.name)}) for r in created])
    return created


def create(uow: UnitOfWork, data: Mapping[str, Any]) -> User:
    """Create a staff user; the password is stored only as a slow salted hash."""
    require(uow.actor, "user.admin")
    try:
        loaded = UserSchema().load(data)
    except SchemaError as exc:
        raise ValidationError(exc.messages) from exc  # type: ignore[arg-type]
    if uow.session.scalar(select(User.id).where(User.email == loaded["email"])) is not None:
        raise ValidationError({"email": [N_("A user with this email exists already.")]})
    roles = list(uow.session.scalars(select(Role).where(Role.name.in_(loaded["roles"]))))
    missing = sorted(set(loaded["roles"]) - {role.name for role in roles})
    if missing:
        raise ValidationError({"roles": [f"No such role: {', '.join(missing)}."]})
    user = User(email=loaded["email"], name=loaded["name"], active=loaded["active"], roles=roles)
    user.set_password(loaded["password"])
    uow.session.add(user)
    uow.session.flush()
    uow.record(
        "user",
        "created",
        [(user.id, {"email": (None, user.email), "roles": (None, loaded["roles"])})],
    )
    return user


def get_by_email(uow: UnitOfWork, email: str) -> User:
    """The user with ``email`` (case-insensitive); :class:`NotFoundError` if none."""
    user = uow.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFoundError("user", email)
    return user


# -- changing accounts ----------------------------------------------------------------------


def get(uow: UnitOfWork, user_id: Any) -> User:
    """User ``user_id`` (``user.admin``); :class:`NotFoundError` if there is none."""
    require(uow.actor, ADMIN_PERMISSION)
    ident = as_record_id(user_id)
    user = uow.session.get(User, ident) if ident is not None and ident > 0 else None
    if user is None:
        raise NotFoundError("user", user_id)
    return user


def update(uow: UnitOfWork, user_id: Any, data: Mapping[str, Any]) -> User:
    """Change a user's ``name``, ``roles`` (names), ``team_id`` or ``language`` (as given).

    Raises :class:`ValidationError` for unknown roles or teams, and when the actor would
    take ``user.admin`` away from themself (nobody could give it back).
    """
    user = get(uow, user_id)
    loaded = load_or_refuse(UserChangeSchema(), data, partial=True)
    return _apply(uow, user, loaded)


def update_profile(uow: UnitOfWork, data: Mapping[str, Any]) -> User:
    """Change the acting user's own ``name`` and ``language`` (no permission needed).

    Raises :class:`PermissionDenied` without a signed-in user (the system has no profile).
    """
    if uow.actor is None:
        raise PermissionDenied("only a signed-in user has a profile")
    user = uow.session.get(User, uow.actor.id)
    if user is None or not user.active:
        raise NotFoundError("user", uow.actor.id)
    loaded = load_or_refuse(ProfileSchema(), data, partial=True)
    return _apply(uow, user, loaded)


def _apply(uow: UnitOfWork, user: User, loaded: Mapping[str, Any]) -> User:
    """Apply validated ``loaded`` changes to ``user`` and audit what really changed."""
    changes: dict[str, tuple[Any, Any]] = {}
    if "name" in loaded and (loaded["name"] or "") != user.name:
        changes["name"] = (user.name, loaded["name"] or "")
        user.name = loaded["name"] or ""
    if "roles" in loaded:
        wanted = sorted(set(loaded["roles"]))
        roles = list(uow.session.scalars(select(Role).where(Role.name.in_(wanted))))
        missing = sorted(set(wanted) - {role.name for role in roles})
        if missing:
            raise ValidationError({"roles": [f"No such role: {', '.join(missing)}."]})
        held = sorted(role.name for role in user.roles)
        if held != wanted:
            if _is_actor(uow, user) and not any(ADMIN_PERMISSION in r.permissions for r in roles):
                raise ValidationError({"roles": [
                    f"You would lose {ADMIN_PERMISSION} yourself: keep a role that grants it."
                ]})
            changes["roles"] = (held, wanted)
            user.roles = roles
    if "language" in loaded and (loaded["language"] or None) != user.language:
        changes["language"] = (user.language, loaded["language"] or None)
        user.language = loaded["language"] or None
    if "team_id" in loaded and loaded["team_id"] != user.team_id:
        team_id = loaded["team_id"]
        if team_id is not None and (
            as_record_id(team_id) is None or uow.session.get(Team, team_id) is None
        ):
            raise ValidationError({"team_id": [N_("No such team.")]})
        changes["team_id"] = (user.team_id, team_id)
        user.team_id = team_id
    if changes:
        uow.session.flush()
        uow.record("user", "updated", [(user.id, changes)])
    return user


def set_active(uow: UnitOfWork, user_id: Any, active: bool) -> User:
    """Deactivate (``False``) or reactivate a user; no-op when it already is.

    A deactivated user cannot sign in, is signed out at their next request, and their
    API tokens are refused. Nobody can deactivate themself.
    """
    user = get(uow, user_id)
    if user.active == active:
        return user
    if not active and _is_actor(uow, user):
        raise ValidationError({"active": [N_("You cannot deactivate yourself.")]})
    user.active = active
    uow.session.flush()
    action = "reactivated" if active else "deactivated"
    uow.record("user", action, [(user.id, {"active": (not active, active)})])
    return user


def _is_actor(uow: UnitOfWork, user: User) -> bool:
    return uow.actor is not None and uow.actor.id == user.id


# -- roles ----------------------------------------------------------------------------------


def get_role(uow: UnitOfWork, role_id: Any) -> Role:
    """Role ``role_id`` (``user.admin``); :class:`NotFoundError` if there is none."""
    require(uow.actor, ADMIN_PERMISSION)
    ident = as_record_id(role_id)
    role = uow.session.get(Role, ident) if ident is not None and ident > 0 else None
    if role is None:
        raise NotFoundError("role", role_id)
    return role


def create_role(uow: UnitOfWork, data: Mapping[str, Any]) -> Role:
    """A new role from ``name``, ``description``, ``permissions``, ``visibility``.

    Every permission must be registered; the name must be unused. Raises
    :class:`ValidationError`.
    """
    require(uow.actor, ADMIN_PERMISSION)
    loaded = load_or_refuse(RoleSchema(), data)
    loaded["permissions"] = sorted(set(loaded["permissions"]))
    loaded["description"] = loaded["description"] or ""
    _check_role(uow, None, loaded)
    role = Role(**loaded)
    uow.session.add(role)
    uow.session.flush()
    uow.record("role", "created", [(role.id, {k: (None, v) for k, v in loaded.items()})])
    return role


def update_role(uow: UnitOfWork, role_id: Any, data: Mapping[str, Any]) -> Role:
    """Change a role's ``name``, ``description``, ``permissions`` or ``visibility``.

    Permissions the role holds that no plugin registers any more may stay; new ones
    must be registered. The actor may not take ``user.admin`` away from themself.
    """
    role = get_role(uow, role_id)
    loaded = load_or_refuse(RoleSchema(), data, partial=True)
    if "permissions" in loaded:
        loaded["permissions"] = sorted(set(loaded["permissions"]))
    if "description" in loaded:
        loaded["description"] = loaded["description"] or ""
    _check_role(uow, role, loaded)
    changes = {
        name: (getattr(role, name), value)
        for name, value in loaded.items()
        if getattr(role, name) != value
    }
    if not changes:
        return role
    for name, (_old, value) in changes.items():
        setattr(role, name, value)
    uow.session.flush()
    uow.record("role", "updated", [(role.id, changes)])
    return role


def _check_role(uow: UnitOfWork, role: Role | None, loaded: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    name = loaded.get("name")
    renamed = name is not None and (role is None or name != role.name)
    if renamed and uow.session.scalar(select(Role.id).where(Role.name == name)) is not None:
        errors["name"] = [N_("A role with this name exists already.")]
    if "permissions" in loaded:
        kept = set(role.permissions) if role is not None else set()
        registered = uow.crm.registry.permissions
        unknown = [p for p in loaded["permissions"] if p not in registered and p not in kept]
        if unknown:
            errors["permissions"] = [f"No such permission: {', '.join(unknown)}."]
        elif role is not None and _loses_admin(uow, role, loaded["permissions"]):
            errors["permissions"] = [
                f"You would lose {ADMIN_PERMISSION} yourself: keep it in this role or give "
                "it to another role of yours first."
            ]
    if errors:
        raise ValidationError(errors)


def _loses_admin(uow: UnitOfWork, role: Role, permissions: list[str]) -> bool:
    """Whether the actor holds ``role``, would lose ``user.admin`` by this change."""
    actor = uow.actor
    if actor is None or ADMIN_PERMISSION in permissions:
        return False
    user = uow.session.get(User, actor.id)
    if user is None or role not in user.roles:
        return False
    others = [other for other in user.roles if other is not role]
    return not any(ADMIN_PERMISSION in other.permissions for other in others)


# -- signing in ---------------------------------------------------------------------------


def login(
    uow: UnitOfWork, email: str, password: str, *, now: dt.datetime | None = None
) -> User | None:
    """Check a sign-in attempt; the signed-in user, or ``None`` for any refusal.

    Throttling is per account and in the database, so it holds across every app
    process: after :data:`MAX_FAILED_LOGINS` wrong passwords in a row the account is
    locked for :data:`LOCKOUT`, during which even the right password is refused.
    Unknown emails, deactivated users and locked accounts are refused the same way,
    after the same slow password check, so a caller cannot tell them apart. Failures
    are written (and audited) in ``uow``: commit it even when this returns ``None``.
    """
    now = now or utcnow()
    address = email.strip().lower()
    user = None
    if address:
        # FOR UPDATE: concurrent attempts on one account count one after the other.
        user = uow.session.scalar(select(User).where(User.email == address).with_for_update())
    if user is None:
        check_password_hash(_decoy_hash(), password)
        return None
    if user.locked_until is not None and user.locked_until <= now:
        # The lock is over: a new run of attempts starts.
        user.locked_until = None
        user.failed_logins = 0
    if user.locked_until is not None or not user.active:
        user.check_password(password)
        return None
    if not user.check_password(password):
        record_failed_login(uow, user, now=now)
        return None
    record_login(uow, user, now=now)
    return user


def record_failed_login(uow: UnitOfWork, user: User, *, now: dt.datetime | None = None) -> None:
    """Count a wrong password for ``user``; lock the account at :data:`MAX_FAILED_LOGINS`."""
    now = now or utcnow()
    before = user.failed_logins
    user.failed_logins = before + 1
    changes: dict[str, tuple[Any, Any]] = {"failed_logins": (before, user.failed_logins)}
    if user.failed_logins >= MAX_FAILED_LOGINS:
        user.locked_until = now + LOCKOUT
        changes["locked_until"] = (None, user.locked_until)
    uow.session.flush()
    uow.record("user", "login_failed", [(user.id, changes)])


def record_login(uow: UnitOfWork, user: User, *, now: dt.datetime | None = None) -> None:
    """Note a successful sign-in: ``last_login_at``, and no failed attempts any more."""
    now = now or utcnow()
    changes: dict[str, tuple[Any, Any]] = {"last_login_at": (user.last_login_at, now)}
    if user.failed_logins:
        changes["failed_logins"] = (user.failed_logins, 0)
    user.last_login_at = now
    user.failed_logins = 0
    user.locked_until = None
    uow.session.flush()
    uow.record("user", "logged_in", [(user.id, changes)])


def change_password(
    uow: UnitOfWork, user_id: int, current_password: str, new_password: str
) -> User:
    """Replace user ``user_id``'s password after checking the current one.

    Only the user themselves (or the system) may: an actor acting for someone else
    gets :class:`PermissionDenied`. Refusals are :class:`ValidationError` on the fields
    ``current_password`` and ``new_password``. The audit entry never holds a password
    or a hash.
    """
    if uow.actor is not None and uow.actor.id != user_id:
        raise PermissionDenied("you can only change your own password")
    user = uow.session.get(User, user_id)
    if user is None or not user.active:
        raise NotFoundError("user", user_id)
    errors: dict[str, list[str]] = {}
    if not user.check_password(current_password):
        errors["current_password"] = [N_("The current password is wrong.")]
    if len(new_password) < MIN_PASSWORD_LENGTH:
        errors["new_password"] = [f"Use at least {MIN_PASSWORD_LENGTH} characters."]
    elif new_password == current_password:
        errors["new_password"] = [N_("Choose a password different from the current one.")]
    if errors:
        raise ValidationError(errors)
    user.set_password(new_password)
    uow.session.flush()
    uow.record("user", "password_changed", [(user.id, {})])
    return user


@cache
def _decoy_hash() -> str:
    """A password hash to check against when there is no user, so timing tells nothing."""
    return generate_password_hash("crm-core: no such user")
