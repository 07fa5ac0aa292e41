"""The forecast, the funnel and quotas in the REST API (``/api/v1/sales``), with their
OpenAPI description.

- ``GET forecast?period=month&from=2026-01-01&to=2026-06-30&by=owner`` and
  ``GET funnel?pipeline_id=&from=&to=&by=`` answer JSON with amounts as strings and
  ratios as numbers (``0.5`` is half); they need ``sales.report.view``, as their
  pages. A malformed parameter (not a date, an unknown ``period`` or ``by``, a
  ``pipeline_id`` that is no number) is a 400 problem, as core answers bad query
  parameters; well-formed values the report refuses (``to`` before ``from``, more than
  36 periods, no such pipeline) are a 422 problem; both name the parameter in
  ``errors``.
- ``quotas``: the quotas, latest period first (a cursor pages them, ``period=month|
  quarter`` filters), set one (``POST``: a quota of the same user or team and period
  is replaced: ``200`` instead of ``201``), read one, change its amount or currency
  (``PATCH``), delete it. Reading needs ``sales.report.view`` (the quotas of the users
  whose deals the caller sees, as for the forecast) or ``sales.admin``; writing needs
  ``sales.admin``, as the quota page does; every write goes through
  :mod:`crm_sales.services.quotas`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apispec import APISpec
from flask import Response, request, url_for
from flask.blueprints import BlueprintSetupState
from marshmallow import Schema, fields, validate

from crm_core.authz import require
from crm_core.errors import ValidationError
from crm_core.web.api import (
    ApiProblem,
    Cursor,
    api_context,
    cursor_arg,
    json_body,
    json_response,
    keyset_page,
    parse_limit,
    path_id,
)
from crm_core.web.api.openapi import (
    add_openapi_contributor,
    input_ref,
    limit_parameter,
    page_of,
    problem_responses,
    schema_ref,
)
from crm_sales import web
from crm_sales.models import Outcome, Quota
from crm_sales.parts.api_common import add_tag, cursor_parameter, id_parameter, json_content
from crm_sales.schemas import QuotaChangeSchema, QuotaSchema
from crm_sales.services import funnel, quotas, reports
from crm_sales.services.funnel import BREAKDOWNS, Funnel, FunnelArgs, Outcomes
from crm_sales.services.reports import GROUPINGS, PERIOD_KINDS, Figures, Forecast, ForecastArgs

#: What ``PATCH /quotas/<id>`` cannot change: whose quota it is and for which period.
FIXED_QUOTA_FIELDS = ("owner_id", "team_id", "period", "starts_on")

# -- the forecast and the funnel --------------------------------------------------------------


@web.api.get("/forecast", endpoint="forecast")
def api_forecast() -> Response:
    """``GET /api/v1/sales/forecast``: the forecast as JSON (see the module's docstring)."""
    crm, user = api_context()
    args = _report_args(reports.forecast_args)
    with crm.unit_of_work(actor=user, source="api", write=False) as uow:
        result = reports.forecast(uow, **args)
    return json_response(forecast_json(result))


@web.api.get("/funnel", endpoint="funnel")
def api_funnel() -> Response:
    """``GET /api/v1/sales/funnel``: the funnel as JSON (see the module's docstring)."""
    crm, user = api_context()
    args = _report_args(funnel.funnel_args)
    with crm.unit_of_work(actor=user, source="api", write=False) as uow:
        result = funnel.funnel(uow, **args)
    return json_response(funnel_json(result))


def forecast_json(result: Forecast) -> dict[str, Any]:
    """A forecast as the API answers it."""
    key = {"owner": "owner_id", "team": "team_id"}.get(result.by)
    data = []
    for row in result.rows:
        item: dict[str, Any] = {"period": row.period.starts_on.isoformat()}
        if key is not None:
            item[key] = row.group_id
            item["name"] = row.group_name
        item["currency"] = row.currency
        item.update(_figures_json(row.figures))
        data.append(item)
    return {
        "period": result.kind,
        "by": result.by,
        "from": result.start.isoformat(),
        "to": result.end.isoformat(),
        "periods": [{"starts_on": p.starts_on.isoformat(), "ends_on": p.ends_on.isoformat()}
                    for p in result.periods],
        "data": data,
    }


def funnel_json(result: Funnel) -> dict[str, Any]:
    """A funnel as the API answers it."""
    return {
        "pipeline": {"id": result.pipeline_id, "name": result.pipeline_name},
        "from": result.start.isoformat(),
        "to": result.end.isoformat(),
        "by": result.by,
        "stages": [
            {
                "stage_id": step.stage_id,
                "name": step.name,
                "outcome": step.outcome,
                "entered": step.entered,
                "conversion_from_previous": _ratio(step.from_previous),
                "conversion_from_first": _ratio(step.from_first),
                "average_seconds_in_stage": _seconds(step.average_seconds),
                "stays_left": step.left,
            }
            for step in result.steps
        ],
        "overall": _outcomes_json(result.overall),
        "breakdown": [
            {
                "key": row.key,
                "name": row.label,
                **_outcomes_json(row.outcomes),
                "entered": [
                    {"stage_id": step.stage_id, "entered": row.entered.get(step.stage_id, 0)}
                    for step in result.steps
                ],
            }
            for row in result.breakdown
        ],
    }


def _report_args(parse: Any) -> dict[str, Any]:
    """The query parameters through ``parse``; malformed ones are a 400 problem."""
    try:
        parsed: dict[str, Any] = parse(request.args)
    except ValidationError as exc:
        raise ApiProblem(400, "Bad parameter", "Some query parameters are invalid.",
                         errors=exc.messages) from exc
    return parsed


def _figures_json(figures: Figures) -> dict[str, Any]:
    return {
        "pipeline": str(figures.pipeline),
        "weighted": str(figures.weighted),
        "committed": str(figures.committed),
        "won": str(figures.won),
        "quota": None if figures.quota is None else str(figures.quota),
        "attainment": _ratio(figures.attainment),
        "open_deals": figures.open_deals,
        "won_deals": figures.won_deals,
    }


def _outcomes_json(outcomes: Outcomes) -> dict[str, Any]:
    return {
        "deals": outcomes.deals,
        "open": outcomes.open,
        "won": outcomes.won,
        "lost": outcomes.lost,
        "win_rate": _ratio(outcomes.win_rate),
        "won_amount": {c: str(a) for c, a in sorted(outcomes.won_amounts.items())},
        "average_won_amount": {c: str(a) for c, a in outcomes.average_sizes.items()},
        "average_cycle_seconds": _seconds(outcomes.average_cycle_seconds),
    }


def _ratio(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _seconds(value: float | None) -> int | None:
    return None if value is None else round(value)


# -- quotas -----------------------------------------------------------------------------------


@web.api.get("/quotas", endpoint="quotas_list")
def api_quotas() -> Response:
    """``GET /quotas``: the quotas, latest period first; ``period`` filters, ``next`` pages."""
    crm, user = api_context()  # the service checks the reader and filters what they see
    limit = parse_limit(request.args.get("limit"))
    period = request.args.get("period")
    if period is not None and period not in reports.PERIOD_KINDS:
        raise ApiProblem(400, "Bad filter", "period: use month or quarter.",
                         errors={"period": ["Use month or quarter."]})
    cursor = cursor_arg("starts_on", Quota.starts_on, Quota.id, descending=True)
    after = None if cursor is None else (cursor.value, cursor.id)
    with crm.unit_of_work(actor=user, source="api", write=False) as uow:
        found = quotas.list_quotas(uow, period=period, after=after, limit=limit + 1)
    rows, next_url = keyset_page(found, limit, lambda last: Cursor(
        "starts_on", True, last.quota.starts_on, last.quota.id))
    return json_response({"data": [quotas.payload(row.quota) for row in rows],
                          "next": next_url})


@web.api.post("/quotas", endpoint="quota_set")
def api_set_quota() -> Response:
    """``POST /quotas``: set a quota; ``201`` for a new one, ``200`` when it replaced one."""
    crm, user = _quota_context()
    body = json_body(Quota)
    with crm.unit_of_work(actor=user, source="api") as uow:
        quota, created = quotas.save_quota(uow, body)
        data = quotas.payload(quota)
    if not created:
        return json_response(data)
    location = url_for("crm_sales_api.quota_get", record_id=data["id"])
    return json_response(data, 201, {"Location": location})


@web.api.get("/quotas/<record_id>", endpoint="quota_get")
def api_quota(record_id: str) -> Response:
    """``GET /quotas/<id>`` (one the caller may see)."""
    crm, user = api_context()
    ident = path_id(record_id, "quota", Quota.id)
    with crm.unit_of_work(actor=user, source="api", write=False) as uow:
        data = quotas.payload(quotas.get(uow, ident))
    return json_response(data)


@web.api.patch("/quotas/<record_id>", endpoint="quota_update")
def api_update_quota(record_id: str) -> Response:
    """``PATCH /quotas/<id>``: a new amount or currency; whose and when stay."""
    crm, user = _quota_context()
    ident = path_id(record_id, "quota", Quota.id)
    body = json_body(Quota)
    fixed = [name for name in FIXED_QUOTA_FIELDS if name in body]
    if fixed:
        raise ValidationError({name: ["Cannot be changed: delete the quota and set another."]
                               for name in fixed})
    with crm.unit_of_work(actor=user, source="api") as uow:
        quota = quotas.get(uow, ident)
        stored = {key: value for key, value in quotas.payload(quota).items() if key != "id"}
        quota, _created = quotas.save_quota(uow, {**stored, **body})
        data = quotas.payload(quota)
    return json_response(data)


@web.api.delete("/quotas/<record_id>", endpoint="quota_delete")
def api_delete_quota(record_id: str) -> Response:
    """``DELETE /quotas/<id>``."""
    crm, user = _quota_context()
    ident = path_id(record_id, "quota", Quota.id)
    with crm.unit_of_work(actor=user, source="api") as uow:
        quotas.delete(uow, ident)
    return Response(status=204)


def _quota_context() -> tuple[Any, Any]:
    """The CRM and the caller (401 without one), who must hold ``sales.admin`` (403)."""
    crm, user = api_context()
    require(user, quotas.ADMIN)
    return crm, user


# -- the OpenAPI document ---------------------------------------------------------------------


def _amount(description: str, **kwargs: Any) -> fields.Decimal:
    return fields.Decimal(as_string=True, required=True, metadata={"description": description},
                          **kwargs)


def _ratio_field(description: str) -> fields.Float:
    return fields.Float(required=True, allow_none=True, metadata={"description": description})


class PeriodOut(Schema):
    """A month or quarter of the forecast: its first and last day."""

    starts_on = fields.Date(required=True)
    ends_on = fields.Date(required=True)


class ForecastRowOut(Schema):
    """The forecast's figures of one period, group and currency."""

    period = fields.Date(required=True, metadata={"description": "The period's first day."})
    owner_id = fields.Integer(allow_none=True, metadata={
        "description": "With `by=owner`: the deals' owner (`null`: deals without one)."})
    team_id = fields.Integer(allow_none=True, metadata={
        "description": "With `by=team`: the owners' team (`null`: owners without one)."})
    name = fields.String(allow_none=True, metadata={
        "description": "With `by=owner` or `by=team`: the owner's or team's name."})
    currency = fields.String(required=True)
    pipeline = _amount("The open deals expected to close in the period.")
    weighted = _amount("Those amounts times their deals' probabilities.")
    committed = _amount("The open deals their owners committed.")
    won = _amount("The deals won in the period.")
    quota = _amount("The quotas of the period in this currency; `null`: none.", allow_none=True)
    attainment = _ratio_field("Won / quota (`0.5` is half); `null` without a quota.")
    open_deals = fields.Integer(required=True)
    won_deals = fields.Integer(required=True)


class ForecastOut(Schema):
    """The forecast: per period, group and currency, what the pipeline holds and was won."""

    period = fields.String(required=True, validate=validate.OneOf(PERIOD_KINDS))
    by = fields.String(required=True, validate=validate.OneOf(GROUPINGS))
    start = fields.Date(data_key="from", required=True)
    end = fields.Date(data_key="to", required=True)
    periods = fields.List(fields.Nested(PeriodOut), required=True)
    data = fields.List(fields.Nested(ForecastRowOut), required=True)


class FunnelPipelineOut(Schema):
    """The pipeline of a funnel."""

    id = fields.Integer(required=True)
    name = fields.String(required=True)


class FunnelStageOut(Schema):
    """A stage of the funnel: deals that entered it, conversions, time spent in it."""

    stage_id = fields.Integer(required=True)
    name = fields.String(required=True)
    outcome = fields.String(required=True, validate=validate.OneOf([o.value for o in Outcome]))
    entered = fields.Integer(required=True, metadata={
        "description": "The deals of the cohort that ever entered it."})
    conversion_from_previous = _ratio_field("Entered / entered the stage before; `null` for "
                                            "the first stage and lost stages.")
    conversion_from_first = _ratio_field("Entered / entered the first stage.")
    average_seconds_in_stage = fields.Integer(required=True, allow_none=True, metadata={
        "description": "The average stay that left the stage; `null`: none left it."})
    stays_left = fields.Integer(required=True)


class OutcomesOut(Schema):
    """How the deals of the cohort (or of a part of it) ended up."""

    deals = fields.Integer(required=True)
    open = fields.Integer(required=True)
    won = fields.Integer(required=True)
    lost = fields.Integer(required=True)
    win_rate = _ratio_field("Won / closed (won or lost); `null` before any deal closed.")
    won_amount = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                             metadata={"description": "Currency -> the amount won."})
    average_won_amount = fields.Dict(keys=fields.String(), values=fields.String(),
                                     required=True, metadata={
                                         "description": "Currency -> the average won deal."})
    average_cycle_seconds = fields.Integer(required=True, allow_none=True, metadata={
        "description": "Created to closed, over the won deals."})


class StageEnteredOut(Schema):
    """How many deals of a part of the cohort entered a stage."""

    stage_id = fields.Integer(required=True)
    entered = fields.Integer(required=True)


class FunnelPartOut(OutcomesOut):
    """A part of the cohort (an owner's deals, a product's...) with its outcomes."""

    key = fields.Raw(required=True, allow_none=True, metadata={
        "description": "The owner's or product's id, the industry or the country code; "
        "`null` for the deals without one."})
    name = fields.String(required=True, allow_none=True)
    entered = fields.List(fields.Nested(StageEnteredOut), required=True)


class FunnelOut(Schema):
    """The funnel of a pipeline for the deals created from `from` to `to`."""

    pipeline = fields.Nested(FunnelPipelineOut, required=True)
    start = fields.Date(data_key="from", required=True)
    end = fields.Date(data_key="to", required=True)
    by = fields.String(required=True, allow_none=True, validate=validate.OneOf(BREAKDOWNS))
    stages = fields.List(fields.Nested(FunnelStageOut), required=True)
    overall = fields.Nested(OutcomesOut, required=True)
    breakdown = fields.List(fields.Nested(FunnelPartOut), required=True)


def describe(spec: APISpec) -> None:
    """Add the forecast, the funnel and the quotas to the OpenAPI document being built."""
    _describe_reports(spec)
    _describe_quotas(spec)


def _describe_reports(spec: APISpec) -> None:
    tag = add_tag(spec, "sales_reports", "The forecast and the funnel (crm-sales), over the "
                  "deals the caller sees. Needs `sales.report.view`.")
    refused = ("A malformed parameter is a 400 problem; a range the report refuses (`to` "
               "before `from`, too many periods, no such pipeline) a 422 one.")
    spec.path(path="/sales/forecast", operations={"get": {
        "operationId": "sales_forecast", "tags": [tag],
        "summary": "The forecast",
        "description": "Per month or quarter of the range, per owner, per team or in total, "
        "and per currency: pipeline, weighted, committed and won against the quotas. "
        + refused,
        "parameters": [{"in": "query", "schema": ForecastArgs}],
        "responses": {
            "200": {"description": "The forecast.",
                    "content": json_content(schema_ref(spec, ForecastOut))},
            **problem_responses(400, 401, 403, 422),
        },
    }})
    spec.path(path="/sales/funnel", operations={"get": {
        "operationId": "sales_funnel", "tags": [tag],
        "summary": "The funnel",
        "description": "How the deals created in the range moved through the pipeline's "
        "stages (default: the default pipeline), with a breakdown `by` owner, product, "
        "segment or region. " + refused,
        "parameters": [{"in": "query", "schema": FunnelArgs}],
        "responses": {
            "200": {"description": "The funnel.",
                    "content": json_content(schema_ref(spec, FunnelOut))},
            **problem_responses(400, 401, 403, 422),
        },
    }})


def _describe_quotas(spec: APISpec) -> None:
    tag = add_tag(spec, "quotas", "Quotas (crm-sales): the sales targets of users and teams "
                  "per month or quarter. Reading needs `sales.report.view` (the quotas of "
                  "the users whose deals the caller sees) or `sales.admin`; writing needs "
                  "`sales.admin`.")
    quota = json_content(schema_ref(spec, QuotaSchema))
    spec.path(path="/sales/quotas", operations={
        "get": {
            "operationId": "quotas_list", "tags": [tag], "summary": "List quotas",
            "description": "Latest period first, then newest; follow `next`.",
            "parameters": [limit_parameter(), cursor_parameter(), {
                "name": "period", "in": "query", "description": "Only quotas of months or "
                "of quarters.", "schema": {"type": "string", "enum": list(PERIOD_KINDS)},
            }],
            "responses": {
                "200": {"description": "One page of quotas.", "content": json_content(
                    page_of(schema_ref(spec, QuotaSchema), "A page of quotas."))},
                **problem_responses(400, 401, 403),
            },
        },
        "post": {
            "operationId": "quotas_set", "tags": [tag], "summary": "Set a quota",
            "description": "The quota of a user (`owner_id`) or a team (`team_id`) for the "
            "month or quarter starting on `starts_on` (its first day). A quota of the same "
            "user or team and period is replaced (`200`).",
            "requestBody": {"required": True,
                            "content": json_content(input_ref(spec, QuotaSchema))},
            "responses": {
                "200": {"description": "The quota set before, with the new amount.",
                        "content": quota},
                "201": {"description": "A new quota.", "content": quota, "headers": {
                    "Location": {"description": "The new quota's URL.", "required": True,
                                 "schema": {"type": "string", "format": "uri-reference"}}}},
                **problem_responses(400, 401, 403, 415, 422),
            },
        },
    })
    spec.path(path="/sales/quotas/{record_id}", parameters=[id_parameter("quota")],
              operations={
        "get": {
            "operationId": "quotas_get", "tags": [tag], "summary": "Get a quota",
            "responses": {"200": {"description": "The quota.", "content": quota},
                          **problem_responses(401, 403, 404)},
        },
        "patch": {
            "operationId": "quotas_update", "tags": [tag], "summary": "Change a quota",
            "description": "Its amount or currency. Whose quota it is and its period cannot "
            "change (422): delete it and set another.",
            "requestBody": {"required": True, "content": json_content(
                input_ref(spec, QuotaChangeSchema, "Quota", partial=True))},
            "responses": {"200": {"description": "The changed quota.", "content": quota},
                          **problem_responses(400, 401, 403, 404, 415, 422)},
        },
        "delete": {
            "operationId": "quotas_delete", "tags": [tag], "summary": "Delete a quota",
            "responses": {"204": {"description": "Deleted."},
                          **problem_responses(401, 403, 404)},
        },
    })


def _add_to_openapi(state: BlueprintSetupState) -> None:
    add_openapi_contributor(state.app, describe)


web.api.record_once(_add_to_openapi)
