"""A plugin registering a channel crm-testplugin registers too: a collision."""

from __future__ import annotations

from crm_core import PluginManifest, hookimpl
from crm_core.extensions import Channel

PLUGIN_NAME = "fake_pigeon_twin"
manifest = PluginManifest(core_api=">=1.0,<2")


@hookimpl
def crm_register_channels() -> list[Channel]:
    """``carrier_pigeon``, again."""
    return [Channel("carrier_pigeon", label="Another pigeon")]
