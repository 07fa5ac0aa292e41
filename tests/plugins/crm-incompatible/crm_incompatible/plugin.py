"""Hook implementations of crm-incompatible; none of them may ever be registered."""

from __future__ import annotations

from crm_core import PluginManifest, hookimpl
from crm_core.extensions import Channel

manifest = PluginManifest(core_api=">=2.0,<3", description="Needs crm_core API 2.")


@hookimpl
def crm_register_channels() -> list[Channel]:
    """A channel that must never show up while this plugin is refused."""
    return [Channel("telegraph", label="Telegraph")]
