"""Users, roles and the audit log under ``/api/v1``: administration and history."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from flask import Blueprint, Response, request, url_for
from marshmallow import Schema, fields
from sqlalchemy import select

from crm_core.authz import require
from crm_core.history import history
from crm_core.ids import MAX_ID
from crm_core.models import AuditEntry, Role, User, Visibility
from crm_core.services import users
from crm_core.services.users import ProfileSchema, UserSchema
from crm_core.web.api.openapi import (
    history_parameters,
    limit_parameter,
    page_of,
    problem_responses,
    schema_ref,
)
from crm_core.web.api.outputs import AuditEntryOut, HistoryEntryOut
from crm_core.web.api.pagination import parse_limit
from crm_core.web.api.problems import ApiProblem
from crm_core.web.api.resource import (
    _check_query,
    _int_arg,
    api_context,
    json_body,
    json_response,
    next_page_url,
)


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
    language = fields.String(allow_none=True)
    roles = fields.Function(lambda user: sorted(role.name for role in user.roles))
    permissions = fields.Function(lambda user: sorted(user.permissions))
    visibility = fields.Function(lambda user: str(user.visibility))
    last_login_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()


def register(blueprint: Blueprint) -> None:
    """Add the administration routes to the API blueprint."""
    blueprint.add_url_rule("/users/me", "users_me", me, methods=["GET"])
    blueprint.add_url_rule("/users/me", "users_me_update", update_me, methods=["PATCH"])
    blueprint.add_url_rule("/users", "users_list", list_users, methods=["GET"])
    blueprint.add_url_rule("/users", "users_create", create_user, methods=["POST"])
    blueprint.add_url_rule("/users/<int:user_id>", "users_get", get_user, methods=["GET"])
    blueprint.add_url_rule(
        "/users/<int:user_id>/history", "users_history", user_history, methods=["GET"]
    )
    blueprint.add_url_rule("/roles", "roles_list", list_roles, methods=["GET"])
    blueprint.add_url_rule("/audit", "audit_list", list_audit, methods=["GET"])


def me() -> Response:
    """``GET /users/me``: the authenticated user, with effective permissions."""
    crm, actor = api_context()
    with crm.session_factory() as session:
        user = session.get(User, actor.id)
        return json_response(UserOut().dump(user))


def update_me(**_: Any) -> Response:
    """``PATCH /users/me``: change your own ``name`` or UI ``language``."""
    crm, actor = api_context()
    data = json_body()
    with crm.unit_of_work(actor=actor, source="api") as uow:
        user = users.update_profile(uow, data)
        body = UserOut().dump(user)
    return json_response(body)


def list_users() -> Response:
    """``GET /users``: every staff user, by id (``user.admin``)."""
    crm, actor = api_context()
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
    return json_response(body)


def get_user(user_id: int) -> Response:
    """``GET /users/<id>`` (``user.admin``, or the user themself)."""
    crm, actor = api_context()
    if actor.id != user_id:
        require(actor, "user.admin")
    with crm.session_factory() as session:
        user = session.get(User, user_id) if user_id <= MAX_ID else None
        if user is None:
            raise ApiProblem(404, "Not found", f"No user {user_id}.", kind="not-found")
        return json_response(UserOut().dump(user))


def user_history(user_id: int) -> Response:
    """``GET /users/<id>/history``: changes to a user (``audit.view`` and ``user.admin``)."""
    crm, actor = api_context()
    limit = parse_limit(request.args.get("limit"))
    before_id = _int_arg("before_id")
    with crm.session_factory() as session:
        page = history(session, actor, "user", user_id, before_id=before_id, limit=limit)
    body: dict[str, Any] = {"data": HistoryEntryOut(many=True).dump(page.entries), "next": None}
    if page.next_before_id is not None:
        body["next"] = next_page_url(before_id=str(page.next_before_id), limit=str(limit))
    return json_response(body)


def create_user(**_: Any) -> Response:
    """``POST /users``: create a staff user (``user.admin``); the password is only hashed."""
    crm, actor = api_context()
    data = json_body()
    with crm.unit_of_work(actor=actor, source="api") as uow:
        user = users.create(uow, data)
        body = UserOut().dump(user)
    location = url_for("crm_api.users_get", user_id=body["id"])
    return json_response(body, status=201, headers={"Location": location})


def list_roles() -> Response:
    """``GET /roles``: every role with its permissions and visibility (``user.admin``)."""
    crm, actor = api_context()
    require(actor, "user.admin")
    with crm.session_factory() as session:
        roles = list(session.scalars(select(Role).order_by(Role.name)))
        return json_response({"data": RoleOut(many=True).dump(roles), "next": None})


def list_audit() -> Response:
    """``GET /audit``: the audit log, newest first, keyset-paginated (``audit.view``).

    The whole log shows changes to every record, so it is for users who may see every
    record; others read a record's own history at ``/<resource>/<id>/history``.
    """
    crm, actor = api_context()
    require(actor, "audit.view")
    _check_query()
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
        body["next"] = next_page_url(before_id=str(page[-1].id), limit=str(limit))
    return json_response(body)


def _next(found: list[Any], page: list[Any], limit: int) -> str | None:
    if len(found) <= limit:
        return None
    return next_page_url(after_id=str(page[-1].id), limit=str(limit))


# -- the OpenAPI description -------------------------------------------------------------


def describe(spec: APISpec) -> None:
    """Add the users, roles and audit operations to the OpenAPI document being built."""
    user = schema_ref(spec, UserOut)
    user_input = schema_ref(spec, UserSchema, "UserInput", output=False)
    user_json = {"application/json": {"schema": user}}
    profile_input = schema_ref(spec, ProfileSchema, "ProfileInput", output=False)
    user_id = {
        "name": "user_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
    after_id = {
        "name": "after_id",
        "in": "query",
        "description": "Users after this id (from a page's `next`).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }
    tag = "administration"
    spec.tag({"name": tag, "description": "Staff users, roles and the audit log."})

    def page(schema: type[Schema], what: str) -> dict[str, Any]:
        item = schema_ref(spec, schema)
        return {"application/json": {"schema": page_of(item, f"A page of {what}.")}}

    spec.path(
        path="/users/me",
        operations={
            "get": {
                "operationId": "users_me",
                "tags": [tag],
                "summary": "The signed-in user",
                "description": "The authenticated user with their effective permissions.",
                "responses": {
                    "200": {"description": "The user.", "content": user_json},
                    **problem_responses(401),
                },
            },
            "patch": {
                "operationId": "users_me_update",
                "tags": [tag],
                "summary": "Change your profile",
                "description": "Your own `name` and UI `language` (a locale code, or null "
                "to follow the browser). No permission needed.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": profile_input}},
                },
                "responses": {
                    "200": {"description": "The user.", "content": user_json},
                    **problem_responses(400, 401, 415, 422),
                },
            },
        },
    )
    spec.path(
        path="/users",
        operations={
            "get": {
                "operationId": "users_list",
                "tags": [tag],
                "summary": "List users",
                "description": "Every staff user by id. Needs `user.admin`.",
                "parameters": [limit_parameter(), after_id],
                "responses": {
                    "200": {"description": "One page of users.", "content": page(UserOut, "users")},
                    **problem_responses(400, 401, 403),
                },
            },
            "post": {
                "operationId": "users_create",
                "tags": [tag],
                "summary": "Create a user",
                "description": "A new staff account; the password is stored only as a slow "
                "hash. Needs `user.admin`.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": user_input}},
                },
                "responses": {
                    "201": {
                        "description": "Created.",
                        "headers": {
                            "Location": {
                                "description": "The new user's URL.",
                                "required": True,
                                "schema": {"type": "string", "format": "uri-reference"},
                            }
                        },
                        "content": user_json,
                    },
                    **problem_responses(400, 401, 403, 409, 415, 422),
                },
            },
        },
    )
    spec.path(
        path="/users/{user_id}",
        parameters=[user_id],
        operations={
            "get": {
                "operationId": "users_get",
                "tags": [tag],
                "summary": "Get a user",
                "description": "Needs `user.admin`, unless it is the authenticated user.",
                "responses": {
                    "200": {"description": "The user.", "content": user_json},
                    **problem_responses(401, 403, 404),
                },
            }
        },
    )
    spec.path(
        path="/users/{user_id}/history",
        parameters=[user_id],
        operations={
            "get": {
                "operationId": "users_history",
                "tags": [tag],
                "summary": "History of a user",
                "description": "Changes to the account, newest first. Needs `audit.view` "
                "and `user.admin`.",
                "parameters": history_parameters(),
                "responses": {
                    "200": {
                        "description": "One page of changes.",
                        "content": page(HistoryEntryOut, "changes"),
                    },
                    **problem_responses(400, 401, 403, 404),
                },
            }
        },
    )
    spec.path(
        path="/roles",
        operations={
            "get": {
                "operationId": "roles_list",
                "tags": [tag],
                "summary": "List roles",
                "description": "Every role with its permissions and record visibility. "
                "Needs `user.admin`.",
                "responses": {
                    "200": {"description": "All roles.", "content": page(RoleOut, "roles")},
                    **problem_responses(401, 403),
                },
            }
        },
    )
    audit_filters = [
        {"name": name, "in": "query", "description": f"Only entries with this `{name}`.",
         "schema": {"type": "string"}}
        for name in ("entity", "entity_id", "action", "source")
    ]
    spec.path(
        path="/audit",
        operations={
            "get": {
                "operationId": "audit_list",
                "tags": [tag],
                "summary": "The audit log",
                "description": "Every change to every record, newest first. Needs "
                "`audit.view` and visibility of all records.",
                "parameters": [
                    *history_parameters(),
                    *audit_filters,
                    {
                        "name": "actor_id",
                        "in": "query",
                        "description": "Only changes made by this user.",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "One page of the log.",
                        "content": page(AuditEntryOut, "audit entries"),
                    },
                    **problem_responses(400, 401, 403),
                },
            }
        },
    )
