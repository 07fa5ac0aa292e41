"""A plugin with two tables of its own (notebooks and their notes) and no revisions yet.

Migration tests point ``MIGRATION_FOLDERS`` at a temporary folder and let
:func:`crm_core.migrate.revision` start the plugin's branch there.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_core import Base, PluginManifest, hookimpl

PLUGIN_NAME = "fake_notes"
manifest = PluginManifest(core_api=">=1.0,<2")

MIGRATION_FOLDERS: list[str] = []


class Notebook(Base):
    """A customer's notebook."""

    __tablename__ = "fakeplugin_notebook"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))


class Note(Base):
    """A note in a notebook; goes with its notebook."""

    __tablename__ = "fakeplugin_note"

    id: Mapped[int] = mapped_column(primary_key=True)
    notebook_id: Mapped[int] = mapped_column(
        ForeignKey("fakeplugin_notebook.id", ondelete="CASCADE"), index=True
    )
    body: Mapped[str] = mapped_column(Text)


@hookimpl
def crm_register_models() -> list[type[Any]]:
    """Notebooks and notes."""
    return [Notebook, Note]


@hookimpl
def crm_register_migrations() -> list[str]:
    """Wherever the test put the branch."""
    return list(MIGRATION_FOLDERS)
