"""A plugin that requires ``fake_needs_missing``: refused along with it."""

from __future__ import annotations

from crm_core import PluginManifest

PLUGIN_NAME = "fake_needs_needs_missing"
manifest = PluginManifest(core_api=">=1.0,<2", requires=("fake-needs-missing",))
