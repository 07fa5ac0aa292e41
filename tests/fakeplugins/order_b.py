"""An ``order_*`` plugin: records its ``crm_startup``. Optionally uses ``fake_order_a`` and more."""

from __future__ import annotations

from typing import Any

from crm_core import PluginManifest, hookimpl
from fakeplugins import CALLS

PLUGIN_NAME = "fake_order_b"
manifest = PluginManifest(core_api=">=1.0,<2", optional=("fake_order_a", "fake_order_zzz"))


@hookimpl
def crm_startup(crm: Any) -> None:
    """Note the call."""
    CALLS.append(PLUGIN_NAME)
