"""A plugin implementing ``fake_publisher``'s hook, which it uses only when present."""

from __future__ import annotations

from crm_core import PluginManifest, hookimpl

PLUGIN_NAME = "fake_subscriber"
manifest = PluginManifest(core_api=">=1.0,<2", optional=("fake_publisher",))


@hookimpl(optionalhook=True)
def crm_fake_ping(value: int) -> int:
    """Answer the ping with the next number."""
    return value + 1
