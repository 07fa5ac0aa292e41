"""A plugin registering core's ``email`` channel again: a collision with core."""

from __future__ import annotations

from crm_core import PluginManifest, hookimpl
from crm_core.extensions import Channel

PLUGIN_NAME = "fake_email_twin"
manifest = PluginManifest(core_api=">=1.0,<2")


@hookimpl
def crm_register_channels() -> list[Channel]:
    """``email``, which core has."""
    return [Channel("email", label="E-mail, but mine")]
