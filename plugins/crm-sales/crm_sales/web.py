"""crm-sales's two blueprints and the parts of the plugin that fill core's slots.

Each *part* (:data:`PARTS`: the deals' board, list, page, forms and slots in
:mod:`crm_sales.parts.deals`, the activities' pages, forms, slots and API in
:mod:`crm_sales.parts.activities`, catalogue and quotes, reports) is a module
that adds its pages to :data:`ui` (``/sales/...``, templates under
``templates/crm_sales/``), its routes to :data:`api` (``/api/v1/sales/...``), and may
define any of the functions :func:`collect` gathers for core's hooks:
``api_resources()``, ``menu_items(actor)``, ``customer_panels(customer, actor)``,
``customer_tabs(customer, actor)``, ``dashboard_widgets(actor)``,
``settings_pages(actor)``, ``timeline_renderers()``, ``jobs()``, ``importers()``,
``exporters()``, ``commands()``. :mod:`crm_sales.plugin` hands what they return to core.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from flask import Blueprint

from crm_core.web.ui import use_error_pages

#: The plugin's pages, under ``/sales``.
ui = Blueprint(
    "crm_sales", __name__, url_prefix="/sales",
    template_folder=str(Path(__file__).parent / "templates"),
)
use_error_pages(ui)  # 403, 404, a failing hook, no PDF: the UI's error pages, not JSON
#: The plugin's API routes beyond its resources, under ``/api/v1/sales``.
api = Blueprint("crm_sales_api", __name__, url_prefix="/api/v1/sales")

#: The modules that make up the plugin's surfaces, in the order their entries appear.
PARTS = ("crm_sales.parts.deals.board", "crm_sales.parts.deals.listing",
         "crm_sales.parts.deals.page", "crm_sales.parts.deals.forms",
         "crm_sales.parts.deals.slots", "crm_sales.parts.deals_io", "crm_sales.parts.reports",
         "crm_sales.parts.reports_api", "crm_sales.parts.catalogue",
         "crm_sales.parts.catalogue_api", "crm_sales.parts.deals_api",
         "crm_sales.parts.pipelines", "crm_sales.parts.activities.pages",
         "crm_sales.parts.activities.forms", "crm_sales.parts.activities.slots",
         "crm_sales.parts.activities.api",)


@cache
def parts() -> tuple[ModuleType, ...]:
    """The part modules, imported once (importing one adds its routes to the blueprints)."""
    return tuple(importlib.import_module(name) for name in PARTS)


def collect(function: str, *args: Any) -> list[Any]:
    """Everything the parts' ``function(*args)`` return, in :data:`PARTS` order."""
    found: list[Any] = []
    for part in parts():
        contribute = getattr(part, function, None)
        if contribute is not None:
            found.extend(contribute(*args) or ())
    return found
