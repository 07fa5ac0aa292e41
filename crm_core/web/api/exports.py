"""``GET /exports/<name>.<format>``: a whole export as a download, streamed as it is read.

``GET /exports/contacts.csv`` answers with every contact the caller may see, as CSV
(``jsonl`` and, for contacts, ``vcf`` too), sent in chunks while it is read so that
neither the server nor the client holds it whole. ``GET /exports`` lists the exports
the caller may make. See ``docs/export.md``.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from flask import Blueprint, Response, request, stream_with_context
from marshmallow import Schema, fields

from crm_core.exports import (
    FORMATS,
    Export,
    ExportError,
    available_exports,
    export_sources,
    prepare_export,
)
from crm_core.web.api.openapi import problem_responses, schema_ref
from crm_core.web.api.problems import ApiProblem
from crm_core.web.api.resource import _check_query, api_context, json_response

_FLAGS = ("include_archived", "excel")


class ExportOut(Schema):
    """An export the authenticated user may make."""

    name = fields.String(required=True, metadata={"description": "`contacts`, a plugin's..."})
    formats = fields.List(
        fields.String(), required=True, metadata={"description": "`csv`, `jsonl`, `vcf`."}
    )
    permission = fields.String(required=True, metadata={"description": "What it needs."})
    description = fields.String(required=True)
    plugin = fields.String(required=True, metadata={"description": "Who provides it."})


def register(blueprint: Blueprint) -> None:
    """Add the export routes to the API blueprint (and check plugins' export names)."""
    blueprint.record_once(lambda state: export_sources(state.app.extensions["crm"]))
    blueprint.add_url_rule("/exports", "exports_list", list_exports, methods=["GET"])
    blueprint.add_url_rule(
        "/exports/<name>.<format_name>", "exports_download", download, methods=["GET"]
    )


def list_exports() -> Response:
    """``GET /exports``: what the caller may export, and in which formats."""
    crm, actor = api_context()
    sources = available_exports(crm, actor)
    return json_response({"data": ExportOut(many=True).dump(sources)})


def download(name: str, format_name: str) -> Response:
    """``GET /exports/<name>.<format>``: the export as an attachment, streamed.

    Needs the export's permission (``contact.view``...); only records the caller may
    see; archived ones with ``include_archived=true``. ``excel=true`` starts a CSV
    file with a byte order mark.
    """
    crm, actor = api_context()
    _check_query()
    flags = {flag: query_flag(flag) for flag in _FLAGS}
    try:
        export = prepare_export(crm, name, format_name, actor=actor, **flags)
    except ExportError as exc:
        if exc.field == "entity":
            raise ApiProblem(404, "Not found", exc.message, kind="not-found") from exc
        raise ApiProblem(
            422,
            "Unsupported export",
            exc.message,
            kind="validation",
            errors={exc.field: [exc.message]},
        ) from exc
    return export_response(export)


def export_response(export: Export) -> Response:
    """``export`` as a download: an attachment streamed while it is read, never cached."""
    response = Response(stream_with_context(export.stream()), content_type=export.content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def query_flag(name: str) -> bool:
    """The query parameter ``name`` as a flag: ``true`` or ``false`` (default); else a 400."""
    raw = request.args.get(name, "false")
    if raw not in ("true", "false"):
        message = "Use true or false."
        raise ApiProblem(400, "Bad parameter", f"{name}: {message}", errors={name: [message]})
    return raw == "true"


# -- the OpenAPI description -------------------------------------------------------------------


def describe(spec: APISpec) -> None:
    """Add the export operations to the OpenAPI document being built."""
    tag = "exports"
    spec.tag(
        {
            "name": tag,
            "description": "Whole exports as CSV, JSON Lines or vCard, streamed; "
            "only what the caller may see.",
        }
    )
    item = schema_ref(spec, ExportOut, "Export")
    spec.path(
        path="/exports",
        operations={
            "get": {
                "operationId": "exports_list",
                "tags": [tag],
                "summary": "List exports",
                "description": "The exports the authenticated user may make: core's "
                "`customers`, `contacts` and `interactions` and plugins', with their formats.",
                "responses": {
                    "200": {
                        "description": "The exports, by name.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["data"],
                                    "properties": {"data": {"type": "array", "items": item}},
                                }
                            }
                        },
                    },
                    **problem_responses(401),
                },
            }
        },
    )
    text: dict[str, Any] = {"schema": {"type": "string"}}
    spec.path(
        path="/exports/{name}.{format}",
        parameters=[
            {
                "name": "name",
                "in": "path",
                "required": True,
                "description": "What to export: `customers`, `contacts`, `interactions` or a "
                "plugin's export (`GET /exports` lists them).",
                "schema": {"type": "string", "minLength": 1},
            },
            {
                "name": "format",
                "in": "path",
                "required": True,
                "description": "; ".join(f"`{f.name}`: {f.description}" for f in FORMATS.values())
                + " (contacts only).",
                "schema": {"type": "string", "enum": sorted(FORMATS)},
            },
        ],
        operations={
            "get": {
                "operationId": "exports_download",
                "tags": [tag],
                "summary": "Download an export",
                "description": "Every record of the export that the authenticated user may "
                "see, streamed as it is read. Needs the export's permission "
                "(`customer.view`, `contact.view`, `interaction.view` or the plugin's). CSV "
                "columns are the API's fields with lists joined (see docs/export.md); JSON "
                "Lines records are shaped as the API shows them.",
                "parameters": [
                    {
                        "name": "include_archived",
                        "in": "query",
                        "description": "Archived records too.",
                        "schema": {"type": "boolean", "default": False},
                    },
                    {
                        "name": "excel",
                        "in": "query",
                        "description": "Start a CSV file with a UTF-8 byte order mark, which "
                        "Excel needs to read it as UTF-8.",
                        "schema": {"type": "boolean", "default": False},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The file, as an attachment.",
                        "headers": {
                            "Content-Disposition": {
                                "description": 'attachment; filename="<name>.<format>"',
                                "required": True,
                                "schema": {"type": "string"},
                            }
                        },
                        "content": {f.media_type: text for f in FORMATS.values()},
                    },
                    **problem_responses(400, 401, 403, 404, 422),
                },
            }
        },
    )
