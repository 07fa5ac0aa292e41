"""A plugin whose ``crm_addhooks`` raises."""

from __future__ import annotations

import pluggy

from crm_core import PluginManifest, hookimpl

PLUGIN_NAME = "fake_broken_addhooks"
manifest = PluginManifest(core_api=">=1.0,<2")


@hookimpl
def crm_addhooks(pm: pluggy.PluginManager) -> None:
    """Fail while adding hookspecs."""
    raise ValueError("no hookspecs today")
