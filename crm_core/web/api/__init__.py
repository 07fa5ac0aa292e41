"""The REST API under ``/api/v1``: core's resources and those plugins register.

See :class:`ApiResource` for the conventions every resource shares. A plugin's own
routes (actions, reports, lists that are no resource) answer the same way with the
request helpers exported here: :func:`api_context` (the CRM and the caller, or 401),
:func:`path_id` (the id in the URL, or 404), :func:`json_body` (the JSON object sent:
415, 400, 422 for what no column stores), :func:`json_response`, keyset pages with
:class:`Cursor`, :func:`cursor_arg`, :func:`keyset_page`, :func:`parse_limit` and
:func:`next_page_url`, and versions with :func:`if_match_version`,
:func:`check_precondition` and :func:`etag`.
"""

from __future__ import annotations

import functools

from flask import Blueprint, Flask

from crm_core.errors import PluginError
from crm_core.web.api.pagination import Cursor, parse_limit
from crm_core.web.api.problems import ApiProblem, register_problem_handlers
from crm_core.web.api.resource import (
    ApiResource,
    api_context,
    check_precondition,
    cursor_arg,
    etag,
    if_match_version,
    json_body,
    json_response,
    keyset_page,
    next_page_url,
    path_id,
)

PREFIX = "/api/v1"

__all__ = [
    "PREFIX", "ApiProblem", "ApiResource", "Cursor", "api_context", "check_precondition",
    "cursor_arg", "etag", "if_match_version", "init_api", "json_body", "json_response",
    "keyset_page", "next_page_url", "parse_limit", "path_id",
]


def init_api(app: Flask) -> Blueprint:
    """Mount ``/api/v1`` with core's resources and every plugin's on ``app``."""
    from crm_core.imports.mapping import plugin_importers
    from crm_core.web.api import admin, exports, imports, merging, search, timeline, webhooks
    from crm_core.web.api.core_resources import core_resources
    from crm_core.web.api.openapi import add_openapi_contributor, docs_blueprint

    crm = app.extensions["crm"]
    blueprint = Blueprint("crm_api", __name__, url_prefix=PREFIX)
    resources: dict[str, ApiResource] = {}
    owners: dict[str, str] = {}
    registered = [("crm_core", core_resources())]
    registered += list(crm.call_each("crm_register_api_resources"))
    for plugin_name, items in registered:
        for resource in items:
            if resource.name in resources:
                raise PluginError(
                    plugin_name,
                    f"registers the API resource {resource.name!r}, which "
                    f"{owners[resource.name]!r} registered already",
                )
            resources[resource.name] = resource
            owners[resource.name] = plugin_name
            resource.register(blueprint)
    for module in (admin, timeline, search, merging, webhooks, imports, exports):
        module.register(blueprint)
    app.register_blueprint(blueprint)
    app.extensions["crm_api_resources"] = resources
    app.register_blueprint(docs_blueprint, url_prefix=PREFIX)
    add_openapi_contributor(app, admin.describe)
    add_openapi_contributor(app, timeline.describe)
    add_openapi_contributor(
        app, functools.partial(search.describe, entities=sorted(crm.registry.search_providers))
    )
    add_openapi_contributor(app, merging.describe)
    add_openapi_contributor(app, webhooks.describe)
    add_openapi_contributor(
        app,
        functools.partial(
            imports.describe, importers=[i.name for i in plugin_importers(crm)]
        ),
    )
    add_openapi_contributor(app, exports.describe)
    register_problem_handlers(app, path_prefix=PREFIX)
    return blueprint
