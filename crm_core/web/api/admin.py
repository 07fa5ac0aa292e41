"""Users, roles and the audit log under ``/api/v1``: administration and history."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request, url_for
from marshmallow import Schema, fields
from sqlalchemy import select

from crm_core.authz import require
from crm_core.models import AuditEntry, Role, User, Visibility
from crm_core.services import users
from crm_core.web.api.pagination import parse_limit
from crm_core.web.api.problems import ApiProblem
from crm_core.web.api.resource import _context, _json, _json_body


class RoleOut(Schema):
    """A role as the API shows it."""

    id = fields.Integer()
    name = fields.String()
    description = fields.String()
    permissions = fields.List(fields.String())
    visibility = fields.String()


class UserOut(Schema):
    """A user as the API shows it (never the password hash)."""

    id = fields.Integer()
    email = fields.String()
    name = fields.String()
    active = fields.Boolean()
    team_id = fields.Integer(allow_none=True)
    roles = fields.Function(lambda user: sorted(role.name for role in user.roles))
    permissions = fields.Function(lambda user: sorted(user.permissions))
    visibility = fields.Function(lambda user: str(user.visibility))
    last_login_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()


class AuditEntryOut(Schema):
    """One change: who, when, through which channel, which fields from what to what."""

    id = fields.Integer()
    occurred_at = fields.AwareDateTime()
    actor_id = fields.Integer(allow_none=True)
    source = fields.String()
    entity = fields.String()
    entity_id = fields.String()
    action = fields.String()
    changes = fields.Dict()


def register(blueprint: Blueprint) -> None:
    """Add the administration routes to the API blueprint."""
    blueprint.add_url_rule("/users/me", "users_me", me, methods=["GET"])
    blueprint.add_url_rule("/users", "users_list", list_users, methods=["GET"])
    blueprint.add_url_rule("/users", "users_create", create_user, methods=["POST"])
    blueprint.add_url_rule("/users/<int:user_id>", "users_get", get_user, methods=["GET"])
    blueprint.add_url_rule("/roles", "roles_list", list_roles, methods=["GET"])
    blueprint.add_url_rule("/audit", "audit_list", list_audit, methods=["GET"])


def me() -> Response:
    """``GET /users/me``: the authenticated user, with effective permissions."""
    crm, actor = _context()
    with crm.session_factory() as session:
        user = session.get(User, actor.id)
        return _json(UserOut().dump(user))


def list_users() -> Response:
    """``GET /users``: every staff user, by id (``user.admin``)."""
    crm, actor = _context()
    require(actor, "user.admin")
    limit = parse_limit(request.args.get("limit"))
    after_id = _int_arg("after_id")
    statement = select(User).order_by(User.id).limit(limit + 1)
    if after_id is not None:
        statement = statement.where(User.id > after_id)
    with crm.session_factory() as session:
        found = list(session.scalars(statement))
        page = found[:limit]
        body = {"data": UserOut(many=True).dump(page), "next": _next(found, page, limit)}
    return _json(body)


def get_user(user_id: int) -> Response:
    """``GET /users/<id>`` (``user.admin``, or the user themself)."""
    crm, actor = _context()
    if actor.id != user_id:
        require(actor, "user.admin")
    with crm.session_factory() as session:
        user = session.get(User, user_id)
        if user is None:
            raise ApiProblem(404, "Not found", f"No user {user_id}.", kind="not-found")
        return _json(UserOut().dump(user))


def create_user(**_: Any) -> Response:
    """``POST /users``: create a staff user (``user.admin``); the password is only hashed."""
    crm, actor = _context()
    data = _json_body()
    with crm.unit_of_work(actor=actor, source="api") as uow:
        user = users.create(uow, data)
        body = UserOut().dump(user)
    location = url_for("crm_api.users_get", user_id=body["id"])
    return _json(body, status=201, headers={"Location": location})


def list_roles() -> Response:
    """``GET /roles``: every role with its permissions and visibility (``user.admin``)."""
    crm, actor = _context()
    require(actor, "user.admin")
    with crm.session_factory() as session:
        roles = list(session.scalars(select(Role).order_by(Role.name)))
        return _json({"data": RoleOut(many=True).dump(roles), "next": None})


def list_audit() -> Response:
    """``GET /audit``: the audit log, newest first, keyset-paginated (``audit.view``).

    The whole log shows changes to every record, so it is for users who may see every
    record; others read a record's own history at ``/<resource>/<id>/history``.
    """
    crm, actor = _context()
    require(actor, "audit.view")
    if actor.visibility is not Visibility.ALL:
        raise ApiProblem(403, "Forbidden", "The whole audit log needs visibility of all "
                         "records; read a record's history instead.", kind="forbidden")
    limit = parse_limit(request.args.get("limit"))
    statement = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    before_id = _int_arg("before_id")
    if before_id is not None:
        statement = statement.where(AuditEntry.id < before_id)
    for name in ("entity", "entity_id", "action", "source"):
        value = request.args.get(name)
        if value is not None:
            statement = statement.where(getattr(AuditEntry, name) == value)
    actor_id = _int_arg("actor_id")
    if actor_id is not None:
        statement = statement.where(AuditEntry.actor_id == actor_id)
    with crm.session_factory() as session:
        found = list(session.scalars(statement))
        page = found[:limit]
        body = {"data": AuditEntryOut(many=True).dump(page), "next": None}
    if len(found) > limit:
        args = {**request.args.to_dict(), "before_id": str(page[-1].id), "limit": str(limit)}
        body["next"] = url_for("crm_api.audit_list", _external=True, **args)
    return _json(body)


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise ApiProblem(400, "Bad parameter", f"{name} must be a whole number.",
                         errors={name: ["Must be a whole number."]})
    return int(raw)


def _next(found: list[Any], page: list[Any], limit: int) -> str | None:
    if len(found) <= limit:
        return None
    args = {**request.args.to_dict(), "after_id": str(page[-1].id), "limit": str(limit)}
    return url_for(request.endpoint or "", _external=True, **args)
