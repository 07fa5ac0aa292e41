"""``GET /search?q=``: one search over customers, contacts and what plugins register."""

from __future__ import annotations

from collections.abc import Collection

from apispec import APISpec
from flask import Blueprint, Response, request

from crm_core.authz import has_permission
from crm_core.errors import ValidationError
from crm_core.search import search
from crm_core.web.api.openapi import limit_parameter, problem_responses, schema_ref
from crm_core.web.api.outputs import SearchHitOut
from crm_core.web.api.pagination import parse_limit
from crm_core.web.api.problems import ApiProblem
from crm_core.web.api.resource import _check_query, api_context, json_response

#: The most hits one search returns: a search box shows a few, not a list to page through.
MAX_HITS = 50
_HITS = SearchHitOut(many=True)


def register(blueprint: Blueprint) -> None:
    """Add the global search route to the API blueprint."""
    blueprint.add_url_rule("/search", "search", global_search, methods=["GET"])


def global_search() -> Response:
    """``GET /search?q=``: the best hits among every entity the caller may search.

    Names (prefix and typo-tolerant), emails and phone numbers match; ``entity``
    narrows the search. Hits respect the caller's record visibility; a caller who may
    search nothing at all gets 403.
    """
    crm, actor = api_context()
    providers = crm.registry.search_providers.values()
    if not any(p.permission is None or has_permission(actor, p.permission) for p in providers):
        raise ApiProblem(403, "Forbidden", "You may not search any kind of record.",
                         kind="forbidden")
    _check_query()
    query = request.args.get("q")
    if query is None or not query.strip():
        raise ApiProblem(400, "Bad parameter", "Give the text to search for in q.",
                         errors={"q": ["Give the text to search for."]})
    limit = _limit()
    entities = [
        part.strip()
        for value in request.args.getlist("entity")
        for part in value.split(",")
        if part.strip()
    ]
    with crm.session_factory() as session:
        try:
            hits = search(crm, session, actor, query, entities=entities or None, limit=limit)
        except ValidationError as exc:
            raise ApiProblem(400, "Bad parameter", "Unknown entity.",
                             errors={"entity": exc.messages.get("entities", [])}) from exc
    return json_response({"data": _HITS.dump(hits)})


def _limit() -> int:
    raw = request.args.get("limit")
    limit = parse_limit(raw if raw not in (None, "") else "20")
    if limit > MAX_HITS:
        raise ApiProblem(400, "Bad limit", f"limit must be from 1 to {MAX_HITS}.",
                         errors={"limit": [f"Must be from 1 to {MAX_HITS}."]})
    return limit


def describe(spec: APISpec, entities: Collection[str]) -> None:
    """Add the search operation, over ``entities``, to the OpenAPI document being built."""
    spec.tag({"name": "search", "description": "One search box for every kind of record."})
    spec.path(
        path="/search",
        operations={
            "get": {
                "operationId": "search",
                "tags": ["search"],
                "summary": "Search everything",
                "description": "The best hits for `q` among customers, contacts and what "
                "plugins register: names by prefix and with typos, emails, phone numbers. "
                "Only records the authenticated user may see.",
                "parameters": [
                    {
                        "name": "q",
                        "in": "query",
                        "required": True,
                        "description": "The text to search for.",
                        "schema": {"type": "string", "minLength": 1},
                    },
                    {
                        "name": "entity",
                        "in": "query",
                        "description": "Only these kinds of record.",
                        "style": "form",
                        "explode": False,
                        "schema": {
                            "type": "array",
                            "items": {"type": "string", "enum": sorted(entities)},
                        },
                    },
                    limit_parameter(MAX_HITS, 20),
                ],
                "responses": {
                    "200": {
                        "description": "The hits, best first.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["data"],
                                    "properties": {
                                        "data": {
                                            "type": "array",
                                            "items": schema_ref(spec, SearchHitOut, "SearchHit"),
                                        }
                                    },
                                }
                            }
                        },
                    },
                    **problem_responses(400, 401, 403),
                },
            }
        },
    )
