"""Alembic environment shared by core and every plugin branch.

It is driven by :mod:`crm_core.migrate`, which puts the CRM runtime into
``config.attributes["crm"]``; there is no ``alembic.ini`` to edit.

Every run is one transaction, on SQLite too (crm-core's engine lets SQLAlchemy
emit ``BEGIN``), so a failing revision leaves the database as it was. On SQLite,
foreign keys are switched off while the revisions run, as SQLite prescribes for
schema changes: batch mode rebuilds a table by copying it and dropping the
original, and with foreign keys on, that drop would delete (``ON DELETE CASCADE``)
or orphan the rows of every table that refers to it. They are checked before
the commit instead, when a revision ran.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext

from crm_core.db import Base
from crm_core.errors import CRMError
from crm_core.migrate import include_object_for

config = context.config
crm = config.attributes["crm"]
only_plugin: str | None = config.attributes.get("only_plugin")


def run_migrations() -> None:
    """Run migrations on the CRM's engine (or the connection a caller passed in)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        # The caller owns this connection and its transaction (and, on SQLite, its
        # foreign key setting, which cannot change inside a transaction).
        _run(connection)
        return
    with crm.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            _sqlite_foreign_keys(connection, on=False)
        try:
            _run(connection)
            connection.commit()
        finally:
            if sqlite:
                connection.rollback()
                _sqlite_foreign_keys(connection, on=True)


def _run(connection: Any) -> None:
    sqlite = connection.dialect.name == "sqlite"
    steps: list[Any] = []
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=sqlite,
        transactional_ddl=True,
        compare_type=True,
        include_object=include_object_for(crm, only_plugin),
        render_item=_render_item,
        on_version_apply=lambda step, **_: steps.append(step),
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite and steps:
            # Only after revisions ran: on a large file the check reads every table
            # (tens of seconds), and with nothing applied there is nothing to check.
            _sqlite_check_foreign_keys(connection)


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Render column types of core and plugins by their module, and import that module.

    ``crm_core.db`` is imported by the revision template already.
    """
    if type_ == "type":
        module = type(obj).__module__
        if not module.startswith("sqlalchemy.") and module != "crm_core.db":
            autogen_context.imports.add(f"import {module}")
    return False


def _sqlite_foreign_keys(connection: Any, *, on: bool) -> None:
    # PRAGMA foreign_keys is a no-op inside a transaction: run it on the DBAPI
    # connection, which (crm_core.db) never opens a transaction by itself.
    connection.connection.dbapi_connection.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def _sqlite_check_foreign_keys(connection: Any) -> None:
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        shown = ", ".join(f"{row[0]} row {row[1]} -> {row[2]}" for row in problems[:5])
        raise CRMError(f"the migration left rows whose foreign key points nowhere: {shown}")


run_migrations()
