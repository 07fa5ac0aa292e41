"""What the plugin's API routes share beyond core's helpers (``crm_core.web.api``): query
flags, and the parameters and tags of their OpenAPI descriptions."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from flask import request

from crm_core.ids import MAX_ID
from crm_core.web.api import ApiProblem


def bool_arg(name: str) -> bool | None:
    """Query parameter ``name``: ``true`` or ``false``, ``None`` when absent; else a 400."""
    raw = request.args.get(name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise ApiProblem(400, "Bad filter", f"{name}: use true or false.",
                         errors={name: ["Use true or false."]})
    return raw == "true"


def id_parameter(entity: str) -> dict[str, Any]:
    """The path parameter ``record_id``: the id of an ``entity``."""
    return {
        "name": "record_id", "in": "path", "required": True,
        "description": f"The id of the {entity}.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }


def cursor_parameter() -> dict[str, Any]:
    """The query parameter ``cursor`` of a keyset-paginated list."""
    return {"name": "cursor", "in": "query", "schema": {"type": "string"},
            "description": "Where to continue: from a page's `next` link."}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    """``content`` of a request body or response: JSON of ``schema``."""
    return {"application/json": {"schema": schema}}


def add_tag(spec: APISpec, name: str, description: str) -> str:
    """Add the tag ``name`` (a group of operations on the docs page); return ``name``."""
    spec.tag({"name": name, "description": description})
    return name
