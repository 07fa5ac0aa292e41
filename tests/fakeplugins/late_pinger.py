"""A plugin implementing only a hook deprecated for removal two majors ahead."""

from __future__ import annotations

from crm_core import PluginManifest, hookimpl

PLUGIN_NAME = "fake_late_pinger"
manifest = PluginManifest(core_api=">=1.0,<2", requires=("fake_deprecating_publisher",))


@hookimpl
def crm_fake_late_ping(value: int) -> int:
    """The hook removed only in API 3.0."""
    return value
