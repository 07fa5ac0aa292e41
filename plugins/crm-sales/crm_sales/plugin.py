"""crm-sales's hook implementations (the module its entry point names).

Each group of hooks lives with the code it wires: the tables and migrations here, the
API in :mod:`crm_sales.api`, the pages in :mod:`crm_sales.ui`, reports in
:mod:`crm_sales.services.reports`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import pluggy
from flask import Blueprint

from crm_core import PluginManifest, hookimpl
from crm_core.extensions import (
    CustomerTab,
    Exporter,
    Importer,
    Job,
    MenuItem,
    Panel,
    Permission,
    TimelineRenderer,
)
from crm_sales import cli, hookspecs, web
from crm_sales.models import MODELS
from crm_sales.permissions import PERMISSIONS

manifest = PluginManifest(
    core_api=">=1.1,<2",
    description="Sales force automation: pipelines, deals, activities, products, quotes, "
    "forecasts and the funnel.",
)

#: The plugin's migration branch ``crm_sales``.
MIGRATIONS = Path(__file__).parent / "migrations" / "versions"
#: The plugin's UI catalogues (German, Swedish, Russian, Polish), beside core's.
TRANSLATIONS = Path(__file__).parent / "translations"


@hookimpl
def crm_addhooks(pm: pluggy.PluginManager) -> None:
    """Publish the deal events other plugins implement (:mod:`crm_sales.hookspecs`)."""
    pm.add_hookspecs(hookspecs)


@hookimpl
def crm_register_models() -> Sequence[type[Any]]:
    """The ``sales_*`` tables."""
    return list(MODELS)


@hookimpl
def crm_register_migrations() -> Sequence[str]:
    """The migration branch ``crm_sales``."""
    return [str(MIGRATIONS)]


@hookimpl
def crm_translation_directories() -> Sequence[str]:
    """The plugin's pages in the languages of core's UI."""
    return [str(TRANSLATIONS)]


@hookimpl
def crm_register_permissions() -> Sequence[Permission]:
    """Deals, activities, reports and the sales administration."""
    return list(PERMISSIONS)


# -- web: the parts' pages, API routes and UI slots (crm_sales.web) --------------------------


@hookimpl
def crm_register_blueprints() -> Sequence[Blueprint]:
    """The plugin's pages (``/sales``) and API routes (``/api/v1/sales``)."""
    web.parts()  # each part adds its views to the blueprints when imported
    return [web.ui, web.api]


@hookimpl
def crm_register_api_resources() -> Sequence[Any]:
    """Deals, activities, products, quotes and quotas as REST resources."""
    return web.collect("api_resources")


@hookimpl
def crm_menu_items(actor: Any) -> Sequence[MenuItem]:
    """*Deals*, *Activities*, *Forecast*... for the users who may see them."""
    return web.collect("menu_items", actor)


@hookimpl
def crm_customer_panels(customer: Any, actor: Any) -> Sequence[Panel]:
    """The customer's open deals and next activities."""
    return web.collect("customer_panels", customer, actor)


@hookimpl
def crm_customer_tabs(customer: Any, actor: Any) -> Sequence[CustomerTab]:
    """The customer's deals (all of them) and activities."""
    return web.collect("customer_tabs", customer, actor)


@hookimpl
def crm_dashboard_widgets(actor: Any) -> Sequence[Panel]:
    """The user's overdue tasks and open deals."""
    return web.collect("dashboard_widgets", actor)


@hookimpl
def crm_settings_pages(actor: Any) -> Sequence[MenuItem]:
    """Pipelines and stages, lost reasons, products and price lists, quotas."""
    return web.collect("settings_pages", actor)


@hookimpl
def crm_timeline_renderers() -> Sequence[TimelineRenderer]:
    """How stage changes look on the customer's timeline."""
    return web.collect("timeline_renderers")


@hookimpl
def crm_timeline_entries(
    session: Any,
    actor: Any,
    customer_id: int,
    before: Any,
    limit: int,
    types: frozenset[str] | None,
    channels: frozenset[str] | None,
) -> Sequence[Any]:
    """The stage changes of the customer's deals (``sales.stage_change``), newest first."""
    from crm_sales.parts.deals import slots

    return slots.timeline_entries(session, actor, customer_id, before, limit, types, channels)


@hookimpl
def crm_register_jobs() -> Sequence[Job]:
    """Reminders of activities that are due."""
    return web.collect("jobs")


@hookimpl
def crm_register_importers() -> Sequence[Importer]:
    """The deals importer, which core runs: ``crm import opportunities FILE``, the import
    API and the ``/imports`` page."""
    return web.collect("importers")


@hookimpl
def crm_register_commands() -> Sequence[click.Command]:
    """``crm sales ...`` (:mod:`crm_sales.cli`), and the commands the parts contribute."""
    return [cli.sales_group, *web.collect("commands")]


@hookimpl
def crm_register_exporters() -> Sequence[Exporter]:
    """``crm export opportunities`` (and activities)."""
    return web.collect("exporters")


@hookimpl
def crm_on_customers_updated(uow: Any, changes: Sequence[Any]) -> None:
    """A customer's new industry or country moves its deals in the funnel's breakdowns."""
    from crm_sales.services import customer_events

    customer_events.customers_updated(uow, changes)


@hookimpl
def crm_on_customers_merged(uow: Any, survivor: Any, merged: Sequence[Any]) -> dict[str, Any]:
    """The merged customers' deals and activities move to the survivor."""
    from crm_sales.services import customer_events

    return customer_events.customers_merged(uow, survivor, merged)


@hookimpl
def crm_on_customers_merge_undone(
    uow: Any, survivor: Any, restored: Sequence[Any], moved: Any
) -> None:
    """The deals and activities a merge moved go back to their customers."""
    from crm_sales.services import customer_events

    customer_events.customers_merge_undone(uow, survivor, restored, moved)
