"""A plugin still implementing deprecated hooks, and calling a deprecated function."""

from __future__ import annotations

from crm_core import PluginManifest, hookimpl
from fakeplugins.old_api import old_double

PLUGIN_NAME = "fake_old_pinger"
manifest = PluginManifest(core_api=">=1.0,<2", requires=("fake_deprecating_publisher",))


@hookimpl
def crm_fake_old_ping(value: int) -> int:
    """The hook removed in API 2.0."""
    return old_double(value)


@hookimpl
def crm_fake_late_ping(value: int) -> int:
    """The hook removed only in API 3.0."""
    return value
