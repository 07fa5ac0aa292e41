"""Declares ``fake_permission.note.view`` but checks ``fake_permission.note.delete`` too."""

from __future__ import annotations

from typing import Any

from crm_core import PluginManifest, hookimpl
from crm_core.authz import has_permission, require
from crm_core.extensions import Permission

PLUGIN_NAME = "crm_fake_permission"
manifest = PluginManifest(core_api=">=1.0,<2", description="Checks an undeclared permission.")

VIEW = "fake_permission.note.view"
DELETE = "fake_permission.note.delete"


@hookimpl
def crm_register_permissions() -> list[Permission]:
    """Only the view permission."""
    return [Permission(VIEW, "See notes")]


def delete_note(actor: Any) -> bool:
    """Checks the declared permission, then one nobody declares."""
    require(actor, VIEW)
    return has_permission(actor, DELETE)
