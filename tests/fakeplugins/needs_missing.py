"""A plugin that requires a plugin nobody installed."""

from __future__ import annotations

from crm_core import PluginManifest

PLUGIN_NAME = "fake_needs_missing"
manifest = PluginManifest(core_api=">=1.0,<2", requires=("crm_nonexistent",))
