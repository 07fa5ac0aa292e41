"""Names that are not the plugin's: a table, a blueprint, templates, a hook, a permission."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pluggy
from flask import Blueprint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_core import PluginManifest, hookimpl
from crm_core.extensions import Permission
from crm_fake_table import hooks

PLUGIN_NAME = "crm_fake_table"
manifest = PluginManifest(core_api=">=1.0,<2", description="Unprefixed names.")


class _Base(DeclarativeBase):
    """Not crm_core.Base: the table stays out of core's metadata."""


class Points(_Base):
    """A table whose name lacks the prefix ``fake_table_``."""

    __tablename__ = "points"
    id: Mapped[int] = mapped_column(primary_key=True)


pages = Blueprint("pages", __name__, template_folder=str(Path(__file__).parent / "templates"))


@hookimpl
def crm_addhooks(pm: pluggy.PluginManager) -> None:
    """Publishes ``on_points_given``."""
    pm.add_hookspecs(hooks)


@hookimpl
def crm_register_models() -> list[type[Any]]:
    """The unprefixed table."""
    return [Points]


@hookimpl
def crm_register_blueprints() -> list[Blueprint]:
    """The unprefixed blueprint."""
    return [pages]


@hookimpl
def crm_register_permissions() -> list[Permission]:
    """An unprefixed permission."""
    return [Permission("points.view", "See points")]
