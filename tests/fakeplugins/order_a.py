"""An ``order_*`` plugin: records when its ``crm_startup`` runs. Requires ``fake_order_c``."""

from __future__ import annotations

from typing import Any

from crm_core import PluginManifest, hookimpl
from fakeplugins import CALLS

PLUGIN_NAME = "fake_order_a"
manifest = PluginManifest(core_api=">=1.0,<2", requires=("fake_order_c",))


@hookimpl
def crm_startup(crm: Any) -> None:
    """Note the call."""
    CALLS.append(PLUGIN_NAME)
