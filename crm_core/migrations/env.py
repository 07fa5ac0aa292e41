"""Alembic environment shared by core and every plugin branch.

It is driven by :mod:`crm_core.migrate`, which puts the CRM runtime into
``config.attributes["crm"]``; there is no ``alembic.ini`` to edit.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from crm_core.db import Base
from crm_core.migrate import include_object_for

config = context.config
crm = config.attributes["crm"]
only_plugin: str | None = config.attributes.get("only_plugin")


def run_migrations() -> None:
    """Run migrations on the CRM's engine (or the connection a caller passed in)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    with crm.engine.connect() as connection:
        _run(connection)
        connection.commit()


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object_for(crm, only_plugin),
        user_module_prefix="crm_core.db.",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
