"""An ``order_*`` plugin: records when its ``crm_startup`` runs. No dependencies."""

from __future__ import annotations

from typing import Any

from crm_core import PluginManifest, hookimpl
from fakeplugins import CALLS

PLUGIN_NAME = "fake_order_c"
manifest = PluginManifest(core_api=">=1.0,<2")


@hookimpl
def crm_startup(crm: Any) -> None:
    """Note the call."""
    CALLS.append(PLUGIN_NAME)
