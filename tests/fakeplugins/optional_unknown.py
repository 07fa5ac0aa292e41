"""A plugin implementing a hook of a plugin that is not installed, marked optional."""

from __future__ import annotations

from typing import Any

from crm_core import PluginManifest, hookimpl

PLUGIN_NAME = "fake_optional_unknown"
manifest = PluginManifest(core_api=">=1.0,<2")


@hookimpl(optionalhook=True)
def crm_on_lead_converted(lead: Any) -> None:
    """Would react to the leads plugin's event, if that plugin were installed."""
