"""Imports crm-core's internals and another plugin's code."""

from __future__ import annotations

from crm_testplugin.models import WelcomeTask

from crm_core import PluginManifest
from crm_core.plugins import PluginRegistry

PLUGIN_NAME = "crm_fake_import"
manifest = PluginManifest(core_api=">=1.0,<2", description="Imports what it may not.")

#: What the plugin leans on.
BORROWED = (PluginRegistry, WelcomeTask)
