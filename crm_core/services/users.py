"""Users and roles: creating staff accounts and the default roles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, fields, validate
from marshmallow import ValidationError as SchemaError
from sqlalchemy import select

from crm_core.authz import require
from crm_core.errors import NotFoundError, ValidationError
from crm_core.models import Role, User
from crm_core.schemas.fieldtypes import EmailAddress, Text
from crm_core.services.unit_of_work import UnitOfWork

MIN_PASSWORD_LENGTH = 8


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
