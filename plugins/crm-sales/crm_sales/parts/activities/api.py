"""The activities' API: the resource ``activities`` and its extra routes.

``/api/v1/activities``: list with the filters ``assignee_id``, ``opportunity_id``,
``customer_id``, ``done``; create, get, ``PATCH``, ``DELETE`` with ``If-Match``, history.
``POST /api/v1/sales/activities/<id>/complete`` (and ``/reopen``), added to core's OpenAPI
document by :func:`describe`. An activity's ``version`` (its ETag) counts its saved
changes.
"""

from __future__ import annotations

import types

from apispec import APISpec
from flask import Response
from flask.blueprints import BlueprintSetupState
from marshmallow import fields
from sqlalchemy import ColumnElement

from crm_core.errors import ValidationError
from crm_core.ids import MAX_ID
from crm_core.web.api import (
    ApiResource,
    api_context,
    etag,
    if_match_version,
    json_body,
    json_response,
    path_id,
)
from crm_core.web.api.openapi import add_openapi_contributor, problem_responses, resource_ref
from crm_sales import web
from crm_sales.models import Activity
from crm_sales.schemas import ActivitySchema
from crm_sales.services import activities
from crm_sales.services.activities import CompleteSchema, visible_activities


class ActivityOut(ActivitySchema):
    """An activity as the API shows it: its fields, when it was reminded, its version."""

    reminded_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    updated_at = fields.AwareDateTime(dump_only=True)
    version = fields.Integer(
        dump_only=True,
        metadata={"description": "Changes with every change: send it back in `If-Match`."},
    )


def _done_is(raw: str) -> ColumnElement[bool]:
    """`true`: only done activities; `false`: only open ones."""
    if raw not in ("true", "false"):
        raise ValueError(raw)
    return Activity.done_at.is_not(None) if raw == "true" else Activity.done_at.is_(None)


ACTIVITIES = ApiResource(
    name="activities",
    entity=activities.ENTITY,
    model=Activity,
    # ``DELETE`` deletes: activities are not archived (the audit trail keeps them).
    service=types.SimpleNamespace(
        get=activities.get, create=activities.create, update=activities.update,
        archive=activities.delete,
    ),
    permission="sales.activity",
    schema=ActivityOut,
    visibility=visible_activities,
    filters={
        # Each is served by an index: (assignee_id, done_at, due_at), (opportunity_id,
        # due_at), (customer_id, due_at); ``done`` by the first with ``assignee_id`` (or
        # for users who see their own activities only).
        "assignee_id": Activity.assignee_id,
        "opportunity_id": Activity.opportunity_id,
        "customer_id": Activity.customer_id,
        "done": _done_is,
    },
    description="Activities (crm-sales): calls, meetings and to-dos with a due time and an "
    "assignee, linked to a customer, contact or deal. `DELETE` deletes one. Complete one "
    "with `POST /sales/activities/{id}/complete`: linked to a customer, it is logged on "
    "the customer's timeline as an interaction.",
)


def api_resources() -> list[ApiResource]:
    """The ``activities`` resource."""
    return [ACTIVITIES]


@web.api.post("/activities/<record_id>/complete", endpoint="activity_complete")
def activity_complete(record_id: str) -> Response:
    """Complete an activity (body: optional ``outcome_note``); ``If-Match`` optional."""
    crm, user = api_context()
    ident = path_id(record_id, "activity", Activity.id)
    body = json_body(Activity, optional=True)
    unknown = sorted(set(body) - set(CompleteSchema().fields))
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    note = body.get("outcome_note", "")
    if not isinstance(note, str):
        raise ValidationError({"outcome_note": ["Not a valid string."]})
    expected = if_match_version(required=False)
    with crm.unit_of_work(actor=user, source="api") as uow:
        done = activities.complete(uow, ident, note, expected_version=expected)
        data, tag = ActivityOut().dump(done), etag(done)
    return json_response(data, headers={"ETag": tag})


@web.api.post("/activities/<record_id>/reopen", endpoint="activity_reopen")
def activity_reopen(record_id: str) -> Response:
    """Make a done activity open again; ``If-Match`` optional."""
    crm, user = api_context()
    ident = path_id(record_id, "activity", Activity.id)
    expected = if_match_version(required=False)
    with crm.unit_of_work(actor=user, source="api") as uow:
        reopened = activities.reopen(uow, ident, expected_version=expected)
        data, tag = ActivityOut().dump(reopened), etag(reopened)
    return json_response(data, headers={"ETag": tag})


def describe(spec: APISpec) -> None:
    """Add ``/sales/activities/{id}/complete`` and ``/reopen`` to the OpenAPI document."""
    record_id = {
        "name": "record_id", "in": "path", "required": True,
        "description": "The id of the activity.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }
    if_match = {
        "name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
        "description": "The ETag you read; when given, a changed activity is a 409.",
    }
    answer = {
        "description": "The activity.",
        "headers": {"ETag": {"$ref": "#/components/headers/ETag"}},
        "content": {"application/json": {"schema": resource_ref(spec, ACTIVITIES.name)}},
    }
    spec.path(path="/sales/activities/{record_id}/complete", parameters=[record_id],
              operations={"post": {
                  "operationId": "activities_complete",
                  "tags": [ACTIVITIES.name],
                  "summary": "Complete an activity",
                  "description": "Sets `done_at`. A call, meeting or to-do linked to a "
                  "customer is logged on the customer's timeline as an interaction (channel "
                  "`call`, `meeting` or `note`; needs `interaction.edit`) whose id is kept "
                  "in `interaction_id`. A done activity is refused (422).",
                  "parameters": [if_match],
                  "requestBody": {"required": False, "content": {"application/json": {
                      "schema": {"type": "object", "additionalProperties": False,
                                 "properties": {"outcome_note": {
                                     "type": "string", "maxLength": 10000,
                                     "description": "How it went: the interaction's text."}}},
                  }}},
                  "responses": {"200": answer,
                                **problem_responses(400, 401, 403, 404, 409, 412, 415, 422)},
              }})
    spec.path(path="/sales/activities/{record_id}/reopen", parameters=[record_id],
              operations={"post": {
                  "operationId": "activities_reopen",
                  "tags": [ACTIVITIES.name],
                  "summary": "Reopen a done activity",
                  "description": "Clears `done_at` (the interaction it logged stays). An "
                  "open activity is refused (422).",
                  "parameters": [if_match],
                  "responses": {"200": answer,
                                **problem_responses(401, 403, 404, 409, 412, 422)},
              }})


def _add_to_openapi(state: BlueprintSetupState) -> None:
    add_openapi_contributor(state.app, describe)


web.api.record_once(_add_to_openapi)
