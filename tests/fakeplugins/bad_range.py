"""A plugin whose manifest's ``core_api`` is not a version range."""

from __future__ import annotations

from crm_core import PluginManifest

PLUGIN_NAME = "fake_bad_range"
manifest = PluginManifest(core_api="one point oh")
