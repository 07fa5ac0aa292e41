"""A plugin with a typo in a hook name (``customer`` for ``customers``)."""

from __future__ import annotations

from typing import Any

from crm_core import PluginManifest, hookimpl

PLUGIN_NAME = "fake_misspelled"
manifest = PluginManifest(core_api=">=1.0,<2")


@hookimpl
def crm_on_customer_created(uow: Any, changes: Any) -> None:
    """Never called: there is no such hook."""
