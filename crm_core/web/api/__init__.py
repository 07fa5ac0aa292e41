"""The REST API under ``/api/v1``: core's resources and those plugins register.

See :class:`ApiResource` for the conventions every resource shares.
"""

from __future__ import annotations

from flask import Blueprint, Flask

from crm_core.errors import PluginError
from crm_core.web.api.problems import ApiProblem, register_problem_handlers
from crm_core.web.api.resource import ApiResource

PREFIX = "/api/v1"

__all__ = ["PREFIX", "ApiProblem", "ApiResource", "init_api"]


def init_api(app: Flask) -> Blueprint:
    """Mount ``/api/v1`` with core's resources and every plugin's on ``app``."""
    from crm_core.web.api import admin
    from crm_core.web.api.core_resources import core_resources

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
    admin.register(blueprint)
    app.register_blueprint(blueprint)
    app.extensions["crm_api_resources"] = resources
    from crm_core.web.api.openapi import docs_blueprint

    app.register_blueprint(docs_blueprint, url_prefix=PREFIX)
    register_problem_handlers(app, path_prefix=PREFIX)
    return blueprint
