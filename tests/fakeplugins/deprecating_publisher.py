"""A plugin that publishes hooks, some deprecated, for other plugins to implement."""

from __future__ import annotations

import pluggy

from crm_core import PluginManifest, hookimpl
from fakeplugins import deprecating_hooks

PLUGIN_NAME = "fake_deprecating_publisher"
manifest = PluginManifest(core_api=">=1.0,<2")


@hookimpl
def crm_addhooks(pm: pluggy.PluginManager) -> None:
    """Add ``crm_fake_old_ping``, ``crm_fake_late_ping`` and ``crm_fake_new_ping``."""
    pm.add_hookspecs(deprecating_hooks)
