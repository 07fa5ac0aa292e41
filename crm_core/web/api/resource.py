"""``ApiResource``: one entity served with every convention of ``/api/v1``.

Core's customers, contacts and interactions are ApiResources, and so are plugins'
(returned from ``crm_register_api_resources``): they share authentication,
permission checks, record visibility, keyset pagination, filters, sorting, sparse
fields, ``ETag``/``If-Match`` and problem documents, instead of copying them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, json, request, url_for
from marshmallow import Schema
from sqlalchemy import ColumnElement, select

from crm_core.authz import require, visible
from crm_core.web.api.pagination import Cursor, after, ordered, parse_limit
from crm_core.web.api.problems import ApiProblem

if TYPE_CHECKING:
    from crm_core.runtime import CRM

#: A filter turns a query parameter's text into a WHERE clause.
FilterFn = Callable[[str], ColumnElement[bool]]


@dataclass
class ApiResource:
    """A REST resource at ``/api/v1/<name>`` backed by a model and a service.

    ``service`` offers ``get``, ``create``, ``update`` and ``archive`` (and, when
    present, ``restore``), each taking a unit of work first, like
    ``crm_core.services.customers``. ``filters`` maps query parameters to indexed
    columns (equality) or to functions building a clause; ``sorts`` maps sort keys
    to NOT NULL columns with an index that ends in the primary key.
    """

    name: str
    entity: str
    model: type[Any]
    service: Any
    permission: str = ""
    """Permission prefix: ``<permission>.view``, ``.edit``, ``.archive``; default ``entity``."""
    filters: Mapping[str, Any] = field(default_factory=dict)
    sorts: Mapping[str, Any] = field(default_factory=dict)
    default_sort: str = "id"
    schema: type[Schema] | None = None
    """The schema to use; default: ``crm.schema(entity)`` (core entities)."""
    visibility: Callable[[Any], ColumnElement[bool]] | None = None
    """``actor -> clause`` keeping the rows ``actor`` may see; default ``authz.visible``."""
    description: str = ""

    def __post_init__(self) -> None:
        self.permission = self.permission or self.entity
        self.sorts = {"id": self.model.id, **self.sorts}

    # -- wiring -----------------------------------------------------------------------

    def register(self, blueprint: Blueprint) -> None:
        """Add the resource's routes to ``blueprint``."""
        base = f"/{self.name}"
        item = f"/{self.name}/<record_id>"
        blueprint.add_url_rule(base, f"{self.name}_list", self.list_view, methods=["GET"])
        blueprint.add_url_rule(base, f"{self.name}_create", self.create_view, methods=["POST"])
        blueprint.add_url_rule(item, f"{self.name}_get", self.get_view, methods=["GET"])
        blueprint.add_url_rule(item, f"{self.name}_update", self.update_view, methods=["PATCH"])
        blueprint.add_url_rule(item, f"{self.name}_archive", self.archive_view, methods=["DELETE"])
        if hasattr(self.service, "restore"):
            blueprint.add_url_rule(
                f"{item}/restore", f"{self.name}_restore", self.restore_view, methods=["POST"]
            )

    def schema_class(self, crm: CRM) -> type[Schema]:
        """The schema records are loaded and dumped with."""
        return self.schema or crm.schema(self.entity)

    def visible_to(self, actor: Any) -> ColumnElement[bool]:
        """The clause keeping what ``actor`` may see."""
        return self.visibility(actor) if self.visibility else visible(actor, self.entity)

    # -- views ------------------------------------------------------------------------

    def list_view(self) -> Response:
        """``GET /<name>``: a page of records, newest cursor in ``next``."""
        crm, actor = _context()
        require(actor, f"{self.permission}.view")
        sort, descending = self._sort()
        column = self.sorts[sort]
        limit = parse_limit(request.args.get("limit"))
        statement = select(self.model).where(self.visible_to(actor), *self._filters())
        cursor_token = request.args.get("cursor")
        if cursor_token:
            cursor = Cursor.decode(
                cursor_token, sort=sort, descending=descending, python_type=_python_type(column)
            )
            statement = statement.where(after(cursor, column, self.model.id))
        statement = ordered(statement, column, self.model.id, descending).limit(limit + 1)
        with crm.session_factory() as session:
            records = list(session.scalars(statement))
            page = records[:limit]
            data = self._dump(crm, page, many=True)
        next_url = None
        if len(records) > limit:
            last = page[-1]
            token = Cursor(sort, descending, getattr(last, column.key), last.id).encode()
            args = {**request.args.to_dict(), "cursor": token, "limit": str(limit)}
            next_url = url_for(request.endpoint or "", _external=True, **args)
        return _json({"data": data, "next": next_url})

    def get_view(self, record_id: str) -> Response:
        """``GET /<name>/<id>``: one record, with its version as ``ETag``."""
        crm, actor = _context()
        with crm.unit_of_work(actor=actor, source="api") as uow:
            record = self.service.get(uow, record_id)
            etag = _etag(record)
            if request.if_none_match.contains(etag.strip('"')):
                return Response(status=304, headers={"ETag": etag})
            body = self._dump(crm, record)
        return _json(body, headers={"ETag": etag})

    def create_view(self) -> Response:
        """``POST /<name>``: validate and create; ``201`` with ``Location`` and ``ETag``."""
        crm, actor = _context()
        data = _json_body()
        with crm.unit_of_work(actor=actor, source="api") as uow:
            record = self.service.create(uow, data)
            body = self._dump(crm, record)
            location = url_for(f"{request.blueprint}.{self.name}_get", record_id=record.id)
            etag = _etag(record)
        return _json(body, status=201, headers={"Location": location, "ETag": etag})

    def update_view(self, record_id: str) -> Response:
        """``PATCH /<name>/<id>``: a partial update; ``If-Match`` must name the current version."""
        crm, actor = _context()
        data = _json_body()
        expected = _if_match()
        with crm.unit_of_work(actor=actor, source="api") as uow:
            record = self.service.get(uow, record_id)
            _check_precondition(record, expected)
            record = self.service.update(uow, record.id, data, expected_version=expected)
            body = self._dump(crm, record)
            etag = _etag(record)
        return _json(body, headers={"ETag": etag})

    def archive_view(self, record_id: str) -> Response:
        """``DELETE /<name>/<id>``: archive (records keep their history); ``If-Match`` needed."""
        return self._state_change(record_id, "archive")

    def restore_view(self, record_id: str) -> Response:
        """``POST /<name>/<id>/restore``: bring an archived record back; ``If-Match`` needed."""
        return self._state_change(record_id, "restore")

    def _state_change(self, record_id: str, action: str) -> Response:
        crm, actor = _context()
        expected = _if_match()
        with crm.unit_of_work(actor=actor, source="api") as uow:
            record = self.service.get(uow, record_id)
            _check_precondition(record, expected)
            record = getattr(self.service, action)(uow, record.id, expected_version=expected)
            etag = _etag(record)
        return Response(status=204, headers={"ETag": etag})

    # -- helpers ------------------------------------------------------------------------

    def _sort(self) -> tuple[str, bool]:
        raw = request.args.get("sort", self.default_sort)
        descending = raw.startswith("-")
        key = raw.lstrip("-")
        if key not in self.sorts:
            raise ApiProblem(
                400, "Bad sort", f"Sort by one of: {', '.join(sorted(self.sorts))}.",
                errors={"sort": [f"Unknown sort key {key!r}."]},
            )
        return key, descending

    def _filters(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        errors: dict[str, list[str]] = {}
        archived = request.args.get("archived", "false")
        if hasattr(self.model, "archived"):
            if archived not in ("true", "false", "any"):
                errors["archived"] = ["Use true, false or any."]
            elif archived != "any":
                clauses.append(self.model.archived.is_(archived == "true"))
        for name, target in self.filters.items():
            raw = request.args.get(name)
            if raw is None:
                continue
            try:
                clauses.append(target(raw) if callable(target) and not hasattr(target, "key")
                               else target == _coerce(target, raw))
            except (ValueError, TypeError):
                errors[name] = [f"Not a valid value for {name}."]
        if errors:
            raise ApiProblem(400, "Bad filter", "Some query parameters are invalid.",
                             errors=errors)
        return clauses

    def _dump(self, crm: CRM, value: Any, *, many: bool = False) -> Any:
        schema_class = self.schema_class(crm)
        requested = request.args.get("fields")
        if not requested:
            return schema_class(many=many).dump(value)
        names = [name.strip() for name in requested.split(",") if name.strip()]
        unknown = sorted(set(names) - set(schema_class().dump_fields))
        if unknown:
            raise ApiProblem(400, "Bad fields", f"Unknown fields: {', '.join(unknown)}.",
                             errors={"fields": [f"Unknown field {name!r}." for name in unknown]})
        return schema_class(many=many, only=["id", *names]).dump(value)


# -- request helpers ----------------------------------------------------------------------


def _context() -> tuple[CRM, Any]:
    """The CRM and the authenticated actor; anonymous requests get a 401 problem."""
    from crm_core.web.auth import current_actor

    actor = current_actor()
    if actor is None:
        raise ApiProblem(401, "Unauthorized", "Send Authorization: Bearer <token>, or sign in.",
                         kind="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="crm"'})
    return current_app.extensions["crm"], actor


def _json_body() -> dict[str, Any]:
    if not request.is_json:
        raise ApiProblem(415, "Unsupported media type", "Send a JSON object as application/json.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiProblem(400, "Bad request body", "The body must be a JSON object.",
                         errors={"_schema": ["Expected a JSON object."]})
    return body


def _if_match() -> int:
    """The version named by ``If-Match``; ``428`` without one, ``412`` for a bad one."""
    raw = request.headers.get("If-Match")
    if not raw:
        raise ApiProblem(428, "Precondition required",
                         "Send If-Match with the ETag you read, so no change is overwritten.")
    value = raw.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise ApiProblem(412, "Precondition failed", "If-Match does not name a version.")
    return int(value)


def _check_precondition(record: Any, expected: int) -> None:
    if record.version != expected:
        raise ApiProblem(412, "Precondition failed",
                         f"The record is at version {record.version}, you sent {expected}: "
                         "reload it and apply your change again.",
                         headers={"ETag": _etag(record)})


def _etag(record: Any) -> str:
    return f'"{record.version}"'


def _json(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json",
                    headers=headers or {})


def _python_type(column: Any) -> type:
    try:
        return column.type.python_type
    except NotImplementedError:
        return str


def _coerce(column: Any, raw: str) -> Any:
    python_type = _python_type(column)
    if python_type is bool:
        if raw not in ("true", "false"):
            raise ValueError(raw)
        return raw == "true"
    if python_type is dt.datetime:
        value = dt.datetime.fromisoformat(raw)
        if value.tzinfo is None:
            raise ValueError(raw)
        return value
    return python_type(raw)
