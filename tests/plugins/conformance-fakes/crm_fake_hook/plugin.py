"""Implements a misspelled hook, and crm-sales's hook without ``optionalhook``."""

from __future__ import annotations

from typing import Any

from crm_core import PluginManifest, hookimpl

PLUGIN_NAME = "crm_fake_hook"
manifest = PluginManifest(core_api=">=1.0,<2", optional=("crm_sales",),
                          description="Hooks without specs.")


@hookimpl
def crm_on_customer_created(uow: Any, changes: Any) -> None:
    """Never called: the hook is ``crm_on_customers_created``."""


@hookimpl
def crm_sales_on_opportunity_won(uow: Any, opportunity: Any) -> None:
    """A hook of crm-sales, which this plugin only uses when present."""
