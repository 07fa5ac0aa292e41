"""A plugin that publishes a hook of its own for other plugins to implement."""

from __future__ import annotations

import pluggy

from crm_core import PluginManifest, hookimpl
from fakeplugins import publisher_hooks

PLUGIN_NAME = "fake_publisher"
manifest = PluginManifest(core_api=">=1.0,<2")


@hookimpl
def crm_addhooks(pm: pluggy.PluginManager) -> None:
    """Add ``crm_fake_ping``."""
    pm.add_hookspecs(publisher_hooks)
