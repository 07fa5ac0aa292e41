"""Deals and pipelines in the REST API.

- ``/api/v1/opportunities`` (core's blueprint): the :class:`~crm_core.web.api.ApiResource`
  ``opportunities`` — list (keyset pages, filters ``status``, ``stage_id``, ``pipeline_id``,
  ``owner_id``, ``customer_id``), create, get, ``PATCH`` and ``DELETE`` with ``If-Match``,
  restore, history — through :mod:`crm_sales.services.opportunities`, showing each user
  the deals whose owner they may see.
- ``/api/v1/sales/...`` (the plugin's blueprint): ``POST opportunities/<id>/move`` (to
  another stage of its pipeline, ``If-Match`` needed), ``GET opportunities/<id>/stages``
  (the stage history, oldest first, keyset pages), ``GET pipelines`` (each with its
  stages) and ``GET lost-reasons``.

Errors are core's ``application/problem+json`` documents: core's handlers answer every
path under ``/api/v1``. The routes are added to the OpenAPI document through core's
contributor hook (:func:`describe`), which also describes crm-sales's exact decimals
(amounts, quantities: JSON strings) as strings, where core's converter writes numbers
with string bounds. Core's request helpers (the JSON body, ``If-Match``, ``ETag``) are
private to ``crm_core.web.api.resource``; the few lines needed are here.

Sorting: the list sorts by ``id`` only (creation order; ``-id`` newest first). A sort key
must be NOT NULL with an index ending in the id: ``expected_close`` may be empty (and its
index starts with ``status``), ``created_at`` has no index.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Response, current_app, json, request, url_for
from flask.blueprints import BlueprintSetupState
from marshmallow import Schema, fields
from sqlalchemy import ColumnElement, select

from crm_core.authz import require
from crm_core.ids import MAX_ID, as_record_id
from crm_core.web.api import ApiProblem, ApiResource, check_precondition, if_match_version
from crm_core.web.api import etag as etag_of
from crm_core.web.api.openapi import (
    add_openapi_contributor,
    limit_parameter,
    page_of,
    problem_responses,
    resource_ref,
    schema_ref,
)
from crm_core.web.api.pagination import Cursor, after, ordered, parse_limit, python_type_of
from crm_core.web.auth import current_actor
from crm_sales import web
from crm_sales.models import Opportunity, Outcome, Stage, StageStay
from crm_sales.schemas import MoveSchema, OpportunitySchema, PipelineSchema
from crm_sales.services import opportunities, pipelines
from crm_sales.services.pipelines import LostReasonSchema

#: Where the plugin's own routes live, relative to the API's root (``/api/v1``).
SALES = "/sales"
#: An exact decimal as the API writes it (amounts, quantities): a JSON string.
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"


def _status_is(raw: str) -> ColumnElement[bool]:
    """Only deals with this status: `open`, `won` or `lost`."""
    if raw not in {outcome.value for outcome in Outcome}:
        raise ValueError(raw)
    return Opportunity.status == raw


def _in_pipeline(raw: str) -> ColumnElement[bool]:
    """Only deals in this pipeline (its id)."""
    ident = as_record_id(raw)
    if ident is None:
        raise ValueError(raw)
    # Through the pipeline's stages: (stage_id, id) serves it, no index leads with pipeline_id.
    return Opportunity.stage_id.in_(select(Stage.id).where(Stage.pipeline_id == ident))


OPPORTUNITIES = ApiResource(
    name="opportunities",
    entity="opportunity",
    model=Opportunity,
    service=opportunities,
    permission="sales.deal",
    schema=OpportunitySchema,
    visibility=opportunities.visible_deals,
    filters={
        "status": _status_is,
        "stage_id": Opportunity.stage_id,
        "pipeline_id": _in_pipeline,
        "owner_id": Opportunity.owner_id,
        "customer_id": Opportunity.customer_id,
    },
    description="Deals (crm-sales): a customer, an amount, a stage of a pipeline, an owner "
    "and an expected close date. Move them with `POST /sales/opportunities/{id}/move`.",
)


def api_resources() -> list[ApiResource]:
    """The ``opportunities`` resource."""
    return [OPPORTUNITIES]


class StageStayOut(Schema):
    """One stay of a deal in a stage: when it entered and left, and who moved it there."""

    id = fields.Integer(required=True)
    stage_id = fields.Integer(required=True)
    stage_name = fields.String(required=True)
    outcome = fields.String(required=True, metadata={"description": "`open`, `won` or `lost`."})
    entered_at = fields.AwareDateTime(required=True)
    left_at = fields.AwareDateTime(
        required=True, allow_none=True, metadata={"description": "`null`: it is there now."}
    )
    moved_by = fields.Integer(
        required=True, allow_none=True, metadata={"description": "The user who moved it."}
    )


_STAYS = StageStayOut(many=True)
_DEAL = OpportunitySchema()
_PIPELINES = PipelineSchema(many=True)
_REASONS = LostReasonSchema(many=True)


# -- routes -------------------------------------------------------------------------------


@web.api.post("/opportunities/<record_id>/move", endpoint="opportunity_move")
def opportunity_move(record_id: str) -> Response:
    """Move a deal to ``stage_id`` of its pipeline (a lost stage may name a lost reason)."""
    crm, actor = _context()
    ident = _record_id(record_id)
    data = _json_object()
    expected = if_match_version()
    with crm.unit_of_work(actor=actor, source="api") as uow:
        deal = opportunities.get(uow, ident)
        check_precondition(deal, expected)
        deal = opportunities.move(uow, deal.id, data, expected_version=expected)
        body = _DEAL.dump(deal)
        etag = etag_of(deal)
    return _json(body, headers={"ETag": etag})


@web.api.get("/opportunities/<record_id>/stages", endpoint="opportunity_stages")
def opportunity_stages(record_id: str) -> Response:
    """The deal's stays in stages, oldest first; ``limit`` and ``cursor`` page them."""
    crm, actor = _context()
    ident = _record_id(record_id)
    limit = parse_limit(request.args.get("limit"))
    column = StageStay.entered_at
    statement = (
        select(StageStay, Stage.name, Stage.outcome)
        .join(Stage, Stage.id == StageStay.stage_id)
        .where(StageStay.opportunity_id == ident)
    )
    token = request.args.get("cursor")
    if token:
        cursor = Cursor.decode(token, sort="entered_at", descending=False,
                               python_type=python_type_of(column), id_bounds=(1, MAX_ID))
        statement = statement.where(after(cursor, column, StageStay.id))
    statement = ordered(statement, column, StageStay.id, False).limit(limit + 1)
    with crm.unit_of_work(actor=actor, source="api", write=False) as uow:
        opportunities.get(uow, ident)  # the permission and the deal's visibility
        rows = list(uow.session.execute(statement))
    page = rows[:limit]
    data = _STAYS.dump([
        {"id": stay.id, "stage_id": stay.stage_id, "stage_name": name, "outcome": outcome,
         "entered_at": stay.entered_at, "left_at": stay.left_at, "moved_by": stay.moved_by}
        for stay, name, outcome in page
    ])
    next_url = None
    if len(rows) > limit:
        last = page[-1][0]
        next_token = Cursor("entered_at", False, last.entered_at, last.id).encode()
        next_url = _next_url(cursor=next_token, limit=str(limit))
    return _json({"data": data, "next": next_url})


@web.api.get("/pipelines", endpoint="pipelines")
def pipelines_list() -> Response:
    """Every pipeline in order, each with its stages in order (a short list: one page)."""
    crm, actor = _context()
    with crm.unit_of_work(actor=actor, source="api", write=False) as uow:
        data = _PIPELINES.dump(pipelines.list_pipelines(uow))
    return _json({"data": data, "next": None})


@web.api.get("/lost-reasons", endpoint="lost_reasons")
def lost_reasons_list() -> Response:
    """The lost reasons by name; ``active=true`` (or ``false``) keeps only those."""
    crm, actor = _context()
    raw = request.args.get("active")
    if raw not in (None, "true", "false"):
        raise ApiProblem(400, "Bad filter", "active: use true or false.",
                         errors={"active": ["Use true or false."]})
    active = None if raw is None else raw == "true"
    with crm.unit_of_work(actor=actor, source="api", write=False) as uow:
        data = _REASONS.dump(pipelines.list_lost_reasons(uow, active=active))
    return _json({"data": data, "next": None})


# -- request helpers (core's are private to crm_core.web.api.resource) ---------------------


def _context() -> tuple[Any, Any]:
    """The CRM and the authenticated actor; anonymous requests get a 401 problem."""
    actor = current_actor()
    if actor is None:
        raise ApiProblem(401, "Unauthorized", "Send Authorization: Bearer <token>, or sign in.",
                         kind="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="crm"'})
    require(actor, opportunities.VIEW)
    return current_app.extensions["crm"], actor


def _record_id(raw: str) -> int:
    """The id in the URL; one that cannot be a deal's id is a 404, like a missing deal."""
    ident = as_record_id(raw) if raw.isascii() and raw.isdigit() else None
    if ident is None or ident < 1:
        raise ApiProblem(404, "Not found", f"No opportunity {raw!r}.", kind="not-found")
    return ident


def _json_object() -> dict[str, Any]:
    """The request's JSON object: 415 if not JSON, 400 if not an object, 422 for values no
    column stores (NUL characters, whole numbers beyond 32 bits)."""
    if not request.is_json:
        raise ApiProblem(415, "Unsupported media type", "Send a JSON object as application/json.")
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        body = None
    if not isinstance(body, dict):
        raise ApiProblem(400, "Bad request body", "The body must be a JSON object.",
                         errors={"_schema": ["Expected a JSON object."]})
    errors: dict[str, list[str]] = {}
    for key, value in body.items():
        if "\x00" in key or (isinstance(value, str) and "\x00" in value):
            errors[key] = ["Must not contain NUL characters."]
        elif isinstance(value, int) and not isinstance(value, bool) and not (
            -MAX_ID - 1 <= value <= MAX_ID
        ):
            errors[key] = [f"Must be from {-MAX_ID - 1} to {MAX_ID}."]
    if errors:
        raise ApiProblem(422, "Invalid input", "Some fields were refused; see errors.",
                         kind="validation", errors=errors)
    return body


def _next_url(**changed: str) -> str:
    args = {**request.args.to_dict(), **changed}
    return url_for(request.endpoint or "", _external=True, **(request.view_args or {}), **args)


def _json(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json",
                    headers=headers or {})


# -- the OpenAPI document ------------------------------------------------------------------


def describe(spec: APISpec, resources: Mapping[str, ApiResource] | None = None) -> None:
    """Add the routes of ``/api/v1/sales`` to the OpenAPI document being built, and describe
    the decimals of crm-sales's resources (``resources``) as the strings they are."""
    _decimals_as_strings(spec, resources or {OPPORTUNITIES.name: OPPORTUNITIES})
    record_id = {
        "name": "record_id", "in": "path", "required": True,
        "description": "The id of the opportunity.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }
    etag = {"ETag": {"$ref": "#/components/headers/ETag"}}
    deal = {"application/json": {"schema": resource_ref(spec, OPPORTUNITIES.name)}}
    tag = OPPORTUNITIES.name
    spec.path(
        path=f"{SALES}/opportunities/{{record_id}}/move",
        parameters=[record_id],
        operations={"post": {
            "operationId": "opportunities_move",
            "tags": [tag],
            "summary": "Move an opportunity to another stage",
            "description": "To `stage_id`, a stage of the deal's pipeline; a lost stage may "
            "name a `lost_reason_id`. Won and lost stages close the deal. The stage history "
            "grows by one stay. `If-Match` must name the version you read.",
            "parameters": ["IfMatch"],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": schema_ref(spec, MoveSchema, "OpportunityMove", output=False)
            }}},
            "responses": {
                "200": {"description": "The moved deal.", "headers": etag, "content": deal},
                **problem_responses(400, 401, 403, 404, 409, 412, 415, 422, 428),
            },
        }},
    )
    spec.path(
        path=f"{SALES}/opportunities/{{record_id}}/stages",
        parameters=[record_id],
        operations={"get": {
            "operationId": "opportunities_stages",
            "tags": [tag],
            "summary": "The stage history of an opportunity",
            "description": "Every stay of the deal in a stage, oldest first; follow `next`.",
            "parameters": [
                limit_parameter(),
                {"name": "cursor", "in": "query", "schema": {"type": "string"},
                 "description": "Where to continue: from a page's `next` link."},
            ],
            "responses": {
                "200": {"description": "One page of the history.", "content": {
                    "application/json": {"schema": page_of(
                        schema_ref(spec, StageStayOut), "A page of stays in stages."
                    )}
                }},
                **problem_responses(400, 401, 403, 404),
            },
        }},
    )
    spec.path(path=f"{SALES}/pipelines", operations={"get": {
        "operationId": "sales_pipelines",
        "tags": [tag],
        "summary": "Pipelines and their stages",
        "description": "Every pipeline in order, each with its stages in order (one page: "
        "`next` is always `null`). Needs `sales.deal.view`.",
        "responses": {
            "200": {"description": "The pipelines.", "content": {"application/json": {
                "schema": page_of(schema_ref(spec, PipelineSchema), "Every pipeline.")
            }}},
            **problem_responses(401, 403),
        },
    }})
    spec.path(path=f"{SALES}/lost-reasons", operations={"get": {
        "operationId": "sales_lost_reasons",
        "tags": [tag],
        "summary": "Lost reasons",
        "description": "Why deals are lost, by name (one page: `next` is always `null`).",
        "parameters": [{
            "name": "active", "in": "query", "schema": {"type": "boolean"},
            "description": "`true`: only the reasons offered now; `false`: the deactivated "
            "ones; absent: all.",
        }],
        "responses": {
            "200": {"description": "The lost reasons.", "content": {"application/json": {
                "schema": page_of(schema_ref(spec, LostReasonSchema), "Every lost reason.")
            }}},
            **problem_responses(400, 401, 403),
        },
    }})


def _decimals_as_strings(spec: APISpec, resources: Mapping[str, ApiResource]) -> None:
    """Describe ``fields.Decimal(as_string=True)`` as what the API sends: a decimal string.

    Core's converter calls them numbers, with string bounds (``"maximum": "99.00"``) that
    OpenAPI 3.1 refuses. Done for crm-sales's resources (their record, input and patch
    components) and every nested schema; the ranges stay in the schemas' validation.
    """
    components = spec.components.schemas
    described: list[tuple[str, type[Schema]]] = []
    for name, resource in resources.items():
        if resource.schema is None or not resource.schema.__module__.startswith("crm_sales"):
            continue
        base = resource_ref(spec, name)["$ref"].rsplit("/", 1)[-1]
        described += [(base + suffix, resource.schema) for suffix in ("", "Input", "Patch")]
    plugin = next((p for p in spec.plugins if isinstance(p, MarshmallowPlugin)), None)
    if plugin is not None and plugin.converter is not None:
        described += [(component, key[0]) for key, component in plugin.converter.refs.items()]
    for component, schema_class in described:
        properties = components.get(component, {}).get("properties", {})
        for key, field in schema_class._declared_fields.items():
            prop = properties.get(field.data_key or key)
            if prop is None or not (isinstance(field, fields.Decimal) and field.as_string):
                continue
            prop.pop("minimum", None)
            prop.pop("maximum", None)
            nullable = isinstance(prop.get("type"), list) and "null" in prop["type"]
            prop["type"] = ["string", "null"] if nullable else "string"
            prop.update(format="decimal", pattern=DECIMAL_PATTERN)


def _add_to_openapi(state: BlueprintSetupState) -> None:
    resources = state.app.extensions.get("crm_api_resources", {})
    add_openapi_contributor(state.app, functools.partial(describe, resources=resources))


web.api.record_once(_add_to_openapi)
