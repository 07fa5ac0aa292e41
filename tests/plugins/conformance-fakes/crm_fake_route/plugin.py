"""Two ``/api/v1`` routes; only the first is in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from crm_core import PluginManifest, hookimpl
from crm_core.web.api import json_response
from crm_core.web.api.openapi import add_openapi_contributor

PLUGIN_NAME = "crm_fake_route"
manifest = PluginManifest(core_api=">=1.0,<2", description="An undocumented route.")

api = Blueprint("crm_fake_route_api", __name__, url_prefix="/api/v1/fake_route")


@api.get("/things")
def things() -> Any:
    """Documented."""
    return json_response({"data": [], "next": None})


@api.get("/things/<int:thing_id>")
def thing(thing_id: int) -> Any:
    """Not documented."""
    return json_response({"id": thing_id})


def describe(spec: Any) -> None:
    """Only ``GET /fake_route/things``."""
    ok = {"200": {"description": "A page of things"}}
    spec.path(path="/fake_route/things", operations={"get": {"summary": "Things", "responses": ok}})


api.record_once(lambda state: add_openapi_contributor(state.app, describe))


@hookimpl
def crm_register_blueprints() -> list[Blueprint]:
    """The API blueprint."""
    return [api]
