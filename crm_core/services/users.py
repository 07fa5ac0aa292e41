"""Users and roles: creating staff accounts and the default roles."""

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
from crm_core.models import Role, User
from crm_core.schemas.fieldtypes import EmailAddress, Text
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
        raise ValidationError({"email": ["A user with this email exists already."]})
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
        errors["current_password"] = ["The current password is wrong."]
    if len(new_password) < MIN_PASSWORD_LENGTH:
        errors["new_password"] = [f"Use at least {MIN_PASSWORD_LENGTH} characters."]
    elif new_password == current_password:
        errors["new_password"] = ["Choose a password different from the current one."]
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
