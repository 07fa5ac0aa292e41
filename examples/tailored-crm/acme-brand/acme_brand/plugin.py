"""acme-brand's hook implementations: the module its entry point names.

crm-core has no way to replace its own templates (docs/ui.md: "A plugin never edits
core's templates"), so the brand is added through the documented extension points: a
dashboard widget rendered from this plugin's template, with the plugin's stylesheet
and logo served by its blueprint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flask import Blueprint

from acme_brand import brand
from crm_core import PluginManifest, hookimpl
from crm_core.extensions import Panel

manifest = PluginManifest(
    core_api=">=1.1,<2", description="Acme Corp's branding: a welcome widget on the dashboard."
)

HERE = Path(__file__).parent
blueprint = Blueprint(
    "acme_brand",
    __name__,
    template_folder=str(HERE / "templates"),
    static_folder=str(HERE / "static"),
    static_url_path="/acme-brand/static",
)


@hookimpl
def crm_register_blueprints() -> Sequence[Blueprint]:
    """Makes ``templates/acme_brand/`` and ``/acme-brand/static/`` reachable."""
    return [blueprint]


@hookimpl
def crm_dashboard_widgets(actor: Any) -> Sequence[Panel]:
    """The branded welcome widget, first on every user's dashboard."""
    context = {**brand.context(), "user_name": actor.name or actor.email}
    return [Panel("acme-welcome", brand.PRODUCT, "acme_brand/welcome.html", context, order=0)]
