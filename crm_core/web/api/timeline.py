"""``GET /customers/<id>/timeline``: the customer 360 view, interactions and plugins' entries."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from flask import Blueprint, Response, request

from crm_core.errors import ValidationError
from crm_core.timeline import MAX_LIMIT, TimelineCursor, timeline
from crm_core.web.api.openapi import limit_parameter, page_of, problem_responses, schema_ref
from crm_core.web.api.outputs import TimelineEntryOut
from crm_core.web.api.pagination import parse_limit
from crm_core.web.api.problems import ApiProblem
from crm_core.web.api.resource import _check_query, api_context, json_response, next_page_url

_ENTRIES = TimelineEntryOut(many=True)


def register(blueprint: Blueprint) -> None:
    """Add the timeline route to the API blueprint."""
    blueprint.add_url_rule(
        "/customers/<record_id>/timeline", "customers_timeline", customer_timeline, methods=["GET"]
    )


def customer_timeline(record_id: str) -> Response:
    """``GET /customers/<id>/timeline``: newest first, filterable by ``channel`` and ``type``.

    Needs ``customer.view``; interactions show with ``interaction.view``, plugins'
    entries as each plugin decides. A customer outside the caller's visibility is a 404.
    """
    crm, actor = api_context()
    _check_query()
    limit = parse_limit(request.args.get("limit"))
    cursor_token = request.args.get("cursor")
    try:
        before = TimelineCursor.decode(cursor_token) if cursor_token else None
    except ValidationError as exc:
        raise ApiProblem(400, "Bad cursor", "The cursor is not one this API made.",
                         errors=exc.messages) from exc
    with crm.session_factory() as session:
        page = timeline(
            crm, session, actor, record_id,
            before=before, limit=limit, channels=_listed("channel"), types=_listed("type"),
        )
    next_url = None
    if page.next_cursor is not None:
        next_url = next_page_url(cursor=page.next_cursor.encode(), limit=str(limit))
    return json_response({"data": _ENTRIES.dump(page.entries), "next": next_url})


def _listed(name: str) -> set[str] | None:
    """A list parameter, repeated (``type=a&type=b``) or comma-separated; ``None`` if absent."""
    values = request.args.getlist(name)
    if not values:
        return None
    return {part.strip() for value in values for part in value.split(",") if part.strip()}


def describe(spec: APISpec) -> None:
    """Add the timeline operation to the OpenAPI document being built."""
    listed: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
    spec.path(
        path="/customers/{record_id}/timeline",
        parameters=[
            {
                "name": "record_id",
                "in": "path",
                "required": True,
                "description": "The id of the customer.",
                "schema": {"type": "integer", "minimum": 1},
            }
        ],
        operations={
            "get": {
                "operationId": "customers_timeline",
                "tags": ["customers"],
                "summary": "A customer's timeline",
                "description": "The customer's interactions and what plugins contribute "
                "(deals, tickets, invoices...), newest first; follow `next` for older entries.",
                "parameters": [
                    limit_parameter(MAX_LIMIT),
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "Where to continue: from a page's `next` link.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "channel",
                        "in": "query",
                        "description": "Only entries on these channels (`call`, `email`...).",
                        "style": "form",
                        "explode": False,
                        "schema": listed,
                    },
                    {
                        "name": "type",
                        "in": "query",
                        "description": "Only entries of these types (`interaction`, "
                        "`sales.deal`...).",
                        "style": "form",
                        "explode": False,
                        "schema": listed,
                    },
                ],
                "responses": {
                    "200": {
                        "description": "One page of the timeline.",
                        "content": {
                            "application/json": {
                                "schema": page_of(
                                    schema_ref(spec, TimelineEntryOut), "A page of the timeline."
                                )
                            }
                        },
                    },
                    **problem_responses(400, 401, 403, 404),
                },
            }
        },
    )
