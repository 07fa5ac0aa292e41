"""The Flask application factory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from flask import Flask

from crm_core.config import load_settings
from crm_core.runtime import CRM
from crm_core.web.api import init_api
from crm_core.web.auth import init_auth
from crm_core.web.i18n import init_i18n
from crm_core.web.ui import init_ui


def create_app(
    config: Mapping[str, Any] | None = None,
    *,
    plugins: Sequence[ModuleType] = (),
    discover_plugins: bool = True,
    crm: CRM | None = None,
) -> Flask:
    """Build the Flask app: settings from ``config`` over ``crm.toml`` and ``CRM_*`` variables.

    ``plugins`` adds plugin modules directly (tests, embedded use); installed
    plugins are found through entry points unless ``discover_plugins`` is false.
    Pass a ready ``crm`` to share one runtime between several apps or tests.
    """
    if crm is None:
        crm = CRM(load_settings(config), plugins=plugins, discover_plugins=discover_plugins)
    # The deployment's template folder is the app's own: Flask searches it before every
    # blueprint's, so a file there overrides core's or a plugin's template of that name.
    app = Flask("crm_core", instance_path=str(crm.settings.instance_path),
                template_folder=str(crm.settings.templates_path))
    app.jinja_env.globals["brand_name"] = crm.settings.brand_name
    app.config["SECRET_KEY"] = crm.settings.secret_key
    app.extensions["crm"] = crm
    init_i18n(app, [str(path) for paths in crm.pm.hook.crm_translation_directories()
                    for path in paths])
    init_auth(app)
    from crm_core.web import status

    app.register_blueprint(status.blueprint)
    init_api(app)
    init_ui(app)
    for blueprints in crm.pm.hook.crm_register_blueprints():
        for blueprint in blueprints:
            app.register_blueprint(blueprint)
    return app
