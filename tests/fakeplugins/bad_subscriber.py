"""A plugin implementing ``fake_publisher``'s hook with an argument the spec lacks."""

from __future__ import annotations

from crm_core import PluginManifest, hookimpl

PLUGIN_NAME = "fake_bad_subscriber"
manifest = PluginManifest(core_api=">=1.0,<2", optional=("fake_publisher",))


@hookimpl(optionalhook=True)
def crm_fake_ping(value: int, nonsense: int) -> int:
    """Cannot be called: ``nonsense`` is not an argument of the hook."""
    return value + nonsense
