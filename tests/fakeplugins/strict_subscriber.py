"""A plugin implementing ``fake_publisher``'s hook without marking it optional."""

from __future__ import annotations

from crm_core import PluginManifest, hookimpl

PLUGIN_NAME = "fake_strict_subscriber"
manifest = PluginManifest(core_api=">=1.0,<2", requires=("fake_publisher",))


@hookimpl
def crm_fake_ping(value: int) -> int:
    """Answer the ping with ten times the number."""
    return value * 10
