"""Half of a dependency cycle: requires ``fake_cycle_b``."""

from __future__ import annotations

from crm_core import PluginManifest

PLUGIN_NAME = "fake_cycle_a"
manifest = PluginManifest(core_api=">=1.0,<2", requires=("fake_cycle_b",))
