"""``ApiResource``: one entity served with every convention of ``/api/v1``.

Core's customers, contacts and interactions are ApiResources, and so are plugins'
(returned from ``crm_register_api_resources``): they share authentication,
permission checks, record visibility, keyset pagination, filters, sorting, sparse
fields, ``ETag``/``If-Match`` and problem documents, instead of copying them.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from flask import Blueprint, Response, current_app, json, request, url_for
from marshmallow import Schema
from sqlalchemy import ColumnElement, Integer, func, select

from crm_core.authz import require, visible
from crm_core.ids import MAX_ID
from crm_core.web.api.outputs import HistoryEntryOut
from crm_core.web.api.pagination import (
    INT64,
    Cursor,
    after,
    in_int_range,
    int_bounds,
    ordered,
    parse_limit,
    python_type_of,
)
from crm_core.web.api.problems import ApiProblem

if TYPE_CHECKING:
    from crm_core.runtime import CRM

#: A filter turns a query parameter's text into a WHERE clause.
FilterFn = Callable[[str], ColumnElement[bool]]
_Row = TypeVar("_Row")


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
        blueprint.add_url_rule(
            f"{item}/history", f"{self.name}_history", self.history_view, methods=["GET"]
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
        crm, actor = api_context()
        require(actor, f"{self.permission}.view")
        _check_query()
        sort, descending = self._sort()
        column = self.sorts[sort]
        limit = parse_limit(request.args.get("limit"))
        statement = select(self.model).where(self.visible_to(actor), *self._filters())
        cursor = cursor_arg(sort, column, self.model.id, descending=descending)
        if cursor is not None:
            statement = statement.where(after(cursor, column, self.model.id))
        statement = ordered(statement, column, self.model.id, descending).limit(limit + 1)
        with crm.session_factory() as session:
            records = list(session.scalars(statement))
            page, next_url = keyset_page(records, limit, lambda last: Cursor(
                sort, descending, getattr(last, column.key), last.id))
            data = self._dump(crm, page, many=True)
        return json_response({"data": data, "next": next_url})

    def get_view(self, record_id: str) -> Response:
        """``GET /<name>/<id>``: one record, with its version as ``ETag``."""
        crm, actor = api_context()
        ident = self._record_id(record_id)
        with crm.unit_of_work(actor=actor, source="api", write=False) as uow:
            record = self.service.get(uow, ident)
            tag = etag(record)
            if request.if_none_match.contains_weak(tag.strip('"')):
                return Response(status=304, headers={"ETag": tag})
            body = self._dump(crm, record)
        return json_response(body, headers={"ETag": tag})

    def create_view(self) -> Response:
        """``POST /<name>``: validate and create; ``201`` with ``Location`` and ``ETag``."""
        crm, actor = api_context()
        data = json_body(self.model)
        with crm.unit_of_work(actor=actor, source="api") as uow:
            record = self.service.create(uow, data)
            body = self._dump(crm, record)
            location = url_for(f"{request.blueprint}.{self.name}_get", record_id=record.id)
            tag = etag(record)
        return json_response(body, status=201, headers={"Location": location, "ETag": tag})

    def update_view(self, record_id: str) -> Response:
        """``PATCH /<name>/<id>``: a partial update; ``If-Match`` must name the current version."""
        crm, actor = api_context()
        ident = self._record_id(record_id)
        data = json_body(self.model)
        expected = if_match_version()
        with crm.unit_of_work(actor=actor, source="api") as uow:
            record = self.service.get(uow, ident)
            check_precondition(record, expected)
            record = self.service.update(uow, record.id, data, expected_version=expected)
            body = self._dump(crm, record)
            tag = etag(record)
        return json_response(body, headers={"ETag": tag})

    def archive_view(self, record_id: str) -> Response:
        """``DELETE /<name>/<id>``: archive (records keep their history); ``If-Match`` needed."""
        return self._state_change(record_id, "archive")

    def restore_view(self, record_id: str) -> Response:
        """``POST /<name>/<id>/restore``: bring an archived record back; ``If-Match`` needed."""
        return self._state_change(record_id, "restore")

    def _state_change(self, record_id: str, action: str) -> Response:
        crm, actor = api_context()
        ident = self._record_id(record_id)
        expected = if_match_version()
        with crm.unit_of_work(actor=actor, source="api") as uow:
            record = self.service.get(uow, ident)
            check_precondition(record, expected)
            record = getattr(self.service, action)(uow, record.id, expected_version=expected)
            tag = etag(record)
        return Response(status=204, headers={"ETag": tag})

    def history_view(self, record_id: str) -> Response:
        """``GET /<name>/<id>/history``: the record's changes, newest first.

        Needs ``<permission>.view`` and ``audit.view``; keyset-paginated by ``before_id``.
        """
        from crm_core.history import history

        crm, actor = api_context()
        require(actor, f"{self.permission}.view")
        require(actor, "audit.view")
        ident = self._record_id(record_id)
        limit = parse_limit(request.args.get("limit"))
        before_id = _int_arg("before_id")
        with crm.session_factory() as session:
            page = history(
                session, actor, self.entity, ident, before_id=before_id, limit=limit,
                model=self.model, visibility=self.visible_to(actor),
            )
        data = HistoryEntryOut(many=True).dump(page.entries)
        next_url = None
        if page.next_before_id is not None:
            next_url = next_page_url(before_id=str(page.next_before_id), limit=str(limit))
        return json_response({"data": data, "next": next_url})

    # -- helpers ------------------------------------------------------------------------

    def _record_id(self, raw: str) -> int:
        """The id in the URL; one that cannot be a row's id is a 404, like a missing row."""
        return path_id(raw, self.entity, self.model.id)

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
        for name, target in self.filters.items():
            raw = request.args.get(name)
            if raw is None:
                continue
            try:
                clauses.append(target(raw) if callable(target) and not hasattr(target, "key")
                               else target == _coerce(target, raw))
            except (ValueError, TypeError, OverflowError):
                errors[name] = [f"Not a valid value for {name}."]
        archived = request.args.get("archived", "false")
        if hasattr(self.model, "archived"):
            if archived not in ("true", "false", "any"):
                errors["archived"] = ["Use true, false or any."]
            elif archived != "any":
                clauses.append(self._archived(archived == "true", indexed=not clauses))
        if errors:
            raise ApiProblem(400, "Bad filter", "Some query parameters are invalid.",
                             errors=errors)
        return clauses

    def _archived(self, wanted: bool, *, indexed: bool) -> ColumnElement[bool]:
        """``archived IS wanted``; written so no index serves it unless ``indexed``.

        Lacking statistics, SQLite's planner takes an index led by ``archived`` (as
        ``ix_customer_archived_name``) for selective, and would walk it rather than a
        filter's own index (``owner_id``, ``customer_id``...). The plain list, with no
        filter, is what those indexes are for.
        """
        column = self.model.archived
        return column.is_(wanted) if indexed else func.coalesce(column, False).is_(wanted)

    def _dump(self, crm: CRM, value: Any, *, many: bool = False) -> Any:
        schema_class = self.schema_class(crm)
        requested = request.args.get("fields")
        if not requested:
            return _dumper(schema_class, many).dump(value)
        names = [name.strip() for name in requested.split(",") if name.strip()]
        unknown = sorted(set(names) - set(schema_class().dump_fields))
        if unknown:
            raise ApiProblem(400, "Bad fields", f"Unknown fields: {', '.join(unknown)}.",
                             errors={"fields": [f"Unknown field {name!r}." for name in unknown]})
        always = ["id"] if "id" in schema_class().dump_fields else []
        return schema_class(many=many, only=[*always, *names]).dump(value)


@functools.lru_cache(maxsize=256)
def _dumper(schema_class: type[Schema], many: bool) -> Schema:
    """One schema instance per class for dumping, reused by every request.

    Making an instance deep-copies every declared field (and, on first use, each nested
    schema's): ~0.15 ms per schema on the bench machine, a few % of a request
    (bench/api_throughput.py). Dumping keeps no state on the instance.
    """
    return schema_class(many=many)

# -- request helpers ----------------------------------------------------------------------
#
# Public (exported by ``crm_core.web.api``) for plugins' own routes under ``/api/v1``, so
# they answer like the resources: ``api_context``, ``path_id``, ``json_body``,
# ``json_response``, ``cursor_arg``, ``keyset_page``, ``next_page_url``,
# ``if_match_version``, ``check_precondition`` and ``etag``.


def api_context() -> tuple[CRM, Any]:
    """The CRM and the authenticated actor; anonymous requests get a 401 problem."""
    from crm_core.web.auth import current_actor

    actor = current_actor()
    if actor is None:
        raise ApiProblem(401, "Unauthorized", "Send Authorization: Bearer <token>, or sign in.",
                         kind="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="crm"'})
    return current_app.extensions["crm"], actor


def _int_arg(name: str, *, bounds: tuple[int, int] = (1, MAX_ID)) -> int | None:
    """Query parameter ``name`` as a whole number within ``bounds``; 400 when it is not."""
    raw = request.args.get(name)
    if raw is None:
        return None
    low, high = bounds
    if not (raw.isascii() and raw.isdigit() and low <= int(raw) <= high):
        message = f"Must be a whole number from {low} to {high}."
        raise ApiProblem(400, "Bad parameter", f"{name}: {message}", errors={name: [message]})
    return int(raw)


def path_id(raw: str, entity: str, column: Any = None) -> int:
    """The id in the URL as a whole number; one that cannot name a row of ``column`` (an
    integer id column; default: 32 bits) is a 404 problem, like a missing row."""
    if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= int_bounds(column)[1]:
        return int(raw)
    raise ApiProblem(404, "Not found", f"No {entity} {raw!r}.", kind="not-found")


def next_page_url(**changed: str) -> str:
    """This request's URL with the query parameters ``changed``: a page's ``next`` link."""
    args = {**request.args.to_dict(), **changed}
    return url_for(request.endpoint or "", _external=True, **(request.view_args or {}), **args)


def cursor_arg(
    sort: str, column: Any, id_column: Any, *, descending: bool = False
) -> Cursor | None:
    """The request's ``cursor`` for a list in ``(column, id_column)`` order, ``None`` on the
    first page; one this sort did not make is a 400 problem (see :class:`Cursor`)."""
    token = request.args.get("cursor")
    if not token:
        return None
    return Cursor.decode(
        token,
        sort=sort,
        descending=descending,
        python_type=python_type_of(column),
        value_bounds=int_bounds(column),
        id_bounds=int_bounds(id_column),
    )


def keyset_page(
    rows: Sequence[_Row], limit: int, cursor_of: Callable[[_Row], Cursor]
) -> tuple[list[_Row], str | None]:
    """The page of ``rows`` (read with ``limit + 1``) and the URL of the next one.

    ``cursor_of(last_row)`` is where the next page starts; the URL keeps the request's
    other parameters. It is ``None`` when ``rows`` held no more than ``limit``.
    """
    page = list(rows[:limit])
    if len(rows) <= limit:
        return page, None
    return page, next_page_url(cursor=cursor_of(page[-1]).encode(), limit=str(limit))


def _check_query() -> None:
    """Refuse query parameters no database column can hold (a NUL character)."""
    bad = sorted({name for name, value in request.args.items(multi=True) if "\x00" in value})
    if bad:
        raise ApiProblem(
            400,
            "Bad parameter",
            "Query parameters must not contain NUL characters.",
            errors={name: ["Contains a NUL character."] for name in bad},
        )


def json_body(model: Any = None, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object; 415 if it is not JSON, 400 if not an object.

    Values no column of ``model`` could store are refused with 422 (see :func:`_unstorable`).
    ``optional``: an empty body is ``{}``.
    """
    if optional and not request.get_data(cache=True):
        return {}
    if not request.is_json:
        raise ApiProblem(415, "Unsupported media type", "Send a JSON object as application/json.")
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        body = None
    if not isinstance(body, dict):
        raise ApiProblem(400, "Bad request body", "The body must be a JSON object.",
                         errors={"_schema": ["Expected a JSON object."]})
    errors = _unstorable(body, model)
    if errors:
        raise ApiProblem(
            422,
            "Invalid input",
            "Some fields were refused; see errors.",
            kind="validation",
            errors=errors,
        )
    return body


def _unstorable(body: dict[str, Any], model: Any = None) -> dict[str, list[str]]:
    """Fields holding what no database can store: NUL characters, integers out of range.

    Checked for every resource before its schema runs, so such input is a 422 on
    SQLite and PostgreSQL alike (PostgreSQL would refuse it with an error of its own).
    A top-level integer is checked against its column (``INTEGER``: 32 bits, as
    PostgreSQL stores it, ids and references included); other integers against 64 bits.
    """
    columns = getattr(getattr(model, "__table__", None), "columns", None)
    errors: dict[str, list[str]] = {}
    bounds: dict[str, tuple[int, int]] = {}
    for key in body:
        column = columns.get(key) if columns is not None else None
        if column is not None and isinstance(column.type, Integer):
            bounds[key] = int_bounds(column)
        elif column is None and key.endswith("_id"):
            bounds[key] = int_bounds(None)  # a reference to another record's INTEGER id
    pending: list[tuple[str, Any, bool]] = [(key, value, True) for key, value in body.items()]
    for key in body:
        if "\x00" in key:
            errors.setdefault(key, []).append("The field name contains a NUL character.")
    while pending:
        field_name, value, top = pending.pop()
        message = None
        if isinstance(value, str) and "\x00" in value:
            message = "Must not contain NUL characters."
        elif isinstance(value, int) and not isinstance(value, bool):
            low, high = bounds.get(field_name, INT64) if top else INT64
            if not low <= value <= high:
                message = f"Must be from {low} to {high}."
        elif isinstance(value, dict):
            if any("\x00" in key for key in value):
                message = "Must not contain NUL characters."
            pending.extend((field_name, item, False) for item in value.values())
        elif isinstance(value, list):
            pending.extend((field_name, item, False) for item in value)
        if message and message not in errors.get(field_name, ()):
            errors.setdefault(field_name, []).append(message)
    return errors


@overload
def if_match_version(*, required: Literal[True] = True) -> int: ...


@overload
def if_match_version(*, required: bool) -> int | None: ...


def if_match_version(*, required: bool = True) -> int | None:
    """The version named by ``If-Match``: ``428`` without one (``None`` unless
    ``required``), ``412`` for one that names no version."""
    raw = request.headers.get("If-Match")
    if not raw:
        if not required:
            return None
        raise ApiProblem(428, "Precondition required",
                         "Send If-Match with the ETag you read, so no change is overwritten.")
    value = raw.strip().removeprefix("W/").strip('"')
    if not (value.isascii() and value.isdigit()):
        raise ApiProblem(412, "Precondition failed", "If-Match does not name a version.")
    return int(value)


def check_precondition(record: Any, expected: int) -> None:
    """``412`` (with the current ``ETag``) unless ``record`` is at version ``expected``."""
    if record.version != expected:
        raise ApiProblem(412, "Precondition failed",
                         f"The record is at version {record.version}, you sent {expected}: "
                         "reload it and apply your change again.",
                         headers={"ETag": etag(record)})


def etag(record: Any) -> str:
    """A versioned record's strong ``ETag``."""
    return f'"{record.version}"'


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``body`` as an ``application/json`` response."""
    return Response(json.dumps(body), status=status, mimetype="application/json",
                    headers=dict(headers or {}))


def _python_type(column: Any) -> type:
    return python_type_of(column)


def _coerce(column: Any, raw: str) -> Any:
    python_type = _python_type(column)
    if python_type is int:
        return in_int_range(int(raw), int_bounds(column))
    if python_type is bool:
        if raw not in ("true", "false"):
            raise ValueError(raw)
        return raw == "true"
    if python_type is dt.datetime:
        value = dt.datetime.fromisoformat(raw)
        if value.tzinfo is None:
            raise ValueError(raw)
        value.astimezone(dt.UTC)  # OverflowError at the edges of time
        return value
    return python_type(raw)

