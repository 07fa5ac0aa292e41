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
path under ``/api/v1``. The routes answer through core's public request helpers
(``crm_core.web.api``: the caller, the JSON body, ``If-Match`` and ``ETag``, keyset
pages) and are added to the OpenAPI document through core's contributor hook
(:func:`describe`).

Sorting: the list sorts by ``id`` only (creation order; ``-id`` newest first). A sort key
must be NOT NULL with an index ending in the id: ``expected_close`` may be empty (and its
index starts with ``status``), ``created_at`` has no index.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from flask import Response, request
from flask.blueprints import BlueprintSetupState
from marshmallow import Schema, fields
from sqlalchemy import ColumnElement, select

from crm_core.authz import require
from crm_core.ids import MAX_ID, as_record_id
from crm_core.web.api import (
    ApiResource,
    Cursor,
    api_context,
    check_precondition,
    cursor_arg,
    if_match_version,
    json_body,
    json_response,
    keyset_page,
    parse_limit,
    path_id,
)
from crm_core.web.api import etag as etag_of
from crm_core.web.api.openapi import (
    add_openapi_contributor,
    limit_parameter,
    page_of,
    problem_responses,
    resource_ref,
    schema_ref,
)
from crm_core.web.api.pagination import after, ordered
from crm_sales import web
from crm_sales.models import Opportunity, Outcome, Stage, StageStay
from crm_sales.parts.api_common import bool_arg
from crm_sales.schemas import MoveSchema, OpportunitySchema, PipelineSchema
from crm_sales.services import opportunities, pipelines
from crm_sales.services.pipelines import LostReasonSchema

#: Where the plugin's own routes live, relative to the API's root (``/api/v1``).
SALES = "/sales"


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
    ident = path_id(record_id, "opportunity")
    data = json_body()
    expected = if_match_version()
    with crm.unit_of_work(actor=actor, source="api") as uow:
        deal = opportunities.get(uow, ident)
        check_precondition(deal, expected)
        deal = opportunities.move(uow, deal.id, data, expected_version=expected)
        body = _DEAL.dump(deal)
        etag = etag_of(deal)
    return json_response(body, headers={"ETag": etag})


@web.api.get("/opportunities/<record_id>/stages", endpoint="opportunity_stages")
def opportunity_stages(record_id: str) -> Response:
    """The deal's stays in stages, oldest first; ``limit`` and ``cursor`` page them."""
    crm, actor = _context()
    ident = path_id(record_id, "opportunity")
    limit = parse_limit(request.args.get("limit"))
    column = StageStay.entered_at
    statement = (
        select(StageStay, Stage.name, Stage.outcome)
        .join(Stage, Stage.id == StageStay.stage_id)
        .where(StageStay.opportunity_id == ident)
    )
    cursor = cursor_arg("entered_at", column, StageStay.id)
    if cursor is not None:
        statement = statement.where(after(cursor, column, StageStay.id))
    statement = ordered(statement, column, StageStay.id, False).limit(limit + 1)
    with crm.unit_of_work(actor=actor, source="api", write=False) as uow:
        opportunities.get(uow, ident)  # the permission and the deal's visibility
        rows = list(uow.session.execute(statement))
    page, next_url = keyset_page(rows, limit, lambda last: Cursor(
        "entered_at", False, last[0].entered_at, last[0].id))
    data = _STAYS.dump([
        {"id": stay.id, "stage_id": stay.stage_id, "stage_name": name, "outcome": outcome,
         "entered_at": stay.entered_at, "left_at": stay.left_at, "moved_by": stay.moved_by}
        for stay, name, outcome in page
    ])
    return json_response({"data": data, "next": next_url})


@web.api.get("/pipelines", endpoint="pipelines")
def pipelines_list() -> Response:
    """Every pipeline in order, each with its stages in order (a short list: one page)."""
    crm, actor = _context()
    with crm.unit_of_work(actor=actor, source="api", write=False) as uow:
        data = _PIPELINES.dump(pipelines.list_pipelines(uow))
    return json_response({"data": data, "next": None})


@web.api.get("/lost-reasons", endpoint="lost_reasons")
def lost_reasons_list() -> Response:
    """The lost reasons by name; ``active=true`` (or ``false``) keeps only those."""
    crm, actor = _context()
    active = bool_arg("active")
    with crm.unit_of_work(actor=actor, source="api", write=False) as uow:
        data = _REASONS.dump(pipelines.list_lost_reasons(uow, active=active))
    return json_response({"data": data, "next": None})


def _context() -> tuple[Any, Any]:
    """The CRM and the caller (401 without one), who must see deals (403)."""
    crm, actor = api_context()
    require(actor, opportunities.VIEW)
    return crm, actor


# -- the OpenAPI document ------------------------------------------------------------------


def describe(spec: APISpec) -> None:
    """Add the deals' routes of ``/api/v1/sales`` to the OpenAPI document being built."""
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


def _add_to_openapi(state: BlueprintSetupState) -> None:
    add_openapi_contributor(state.app, describe)


web.api.record_once(_add_to_openapi)
