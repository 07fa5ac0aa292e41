"""Search indexing of new rows can be deferred to one statement per batch.

The triggers of ``0003`` index a new contact three times (its row, then each email and
phone number rebuilds its document), about 0.3 ms per contact on SQLite: a bulk insert
spent nine tenths of its time there. Now their INSERT triggers stand aside while a
transaction has deferred indexing, and ``crm_core.search.deferred_index`` indexes the
batch's new rows once, with one ``INSERT ... SELECT``:

- SQLite: the one-row table ``search_state`` (``paused`` 0 or 1); the INSERT triggers on
  customer, contact, contact_email and contact_phone run ``WHEN`` it is 0. Only one
  transaction writes at a time and it sets the flag back before it commits, so no
  other writer ever sees it set.
- PostgreSQL: the transaction-local setting ``crm.search_deferred`` (``SET LOCAL``);
  the contact triggers' functions return early on INSERT while it is ``on``.

Updates and deletes keep indexing row by row, as before.

Revision ID: 0006_core
Revises: 0005_core
Create Date: 2026-11-24 03:40:00
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0006_core"
down_revision: str | Sequence[str] | None = "0005_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The triggers a deferred transaction pauses (SQLite), as 0003 made them.
_SQLITE_INSERT_TRIGGERS = (
    "search_customer_insert",
    "search_contact_insert",
    "search_contact_email_insert",
    "search_contact_phone_insert",
)
_RUNNING = "(SELECT paused FROM search_state) = 0"


def _search_0003():
    """0003's module (its statements are the triggers' definitions); loaded by path, as
    Alembic loads revisions."""
    path = Path(__file__).with_name("0003_search.py")
    spec = importlib.util.spec_from_file_location("crm_core_search_0003", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sqlite_triggers(condition: str | None) -> list[str]:
    """0003's INSERT triggers, with ``WHEN condition`` (or as they were, without)."""
    statements = []
    for statement in _search_0003()._sqlite_statements():
        for name in _SQLITE_INSERT_TRIGGERS:
            head = f"CREATE TRIGGER {name} AFTER INSERT ON "
            if statement.startswith(head):
                table, body = statement[len(head) :].split(" BEGIN", 1)
                when = f" WHEN {condition}" if condition else ""
                statements += [
                    f"DROP TRIGGER IF EXISTS {name}",
                    f"{head}{table}{when} BEGIN{body}",
                ]
    assert len(statements) == 2 * len(_SQLITE_INSERT_TRIGGERS), "0003's triggers changed"
    return statements


_PG_DEFERRED = "coalesce(current_setting('crm.search_deferred', true), '') = 'on'"

_PG_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION search_contact_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND {_PG_DEFERRED} THEN
        RETURN NULL;
    END IF;
    PERFORM search_contact_refresh(ARRAY[NEW.id]);
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION search_contact_child_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM search_contact_refresh(ARRAY[OLD.contact_id]);
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM search_contact_refresh(ARRAY[OLD.contact_id, NEW.contact_id]);
    ELSIF NOT {_PG_DEFERRED} THEN
        PERFORM search_contact_refresh(ARRAY[NEW.contact_id]);
    END IF;
    RETURN NULL;
END
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TABLE search_state (id INTEGER PRIMARY KEY CHECK (id = 1), "
            "paused INTEGER NOT NULL DEFAULT 0)"
        )
        op.execute("INSERT INTO search_state (id, paused) VALUES (1, 0)")
        for statement in _sqlite_triggers(_RUNNING):
            op.execute(statement)
    else:
        op.execute(_PG_FUNCTIONS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in _sqlite_triggers(None):
            op.execute(statement)
        op.execute("DROP TABLE search_state")
    else:
        functions = (
            "CREATE FUNCTION search_contact_changed()",
            "CREATE FUNCTION search_contact_child_changed()",
        )
        for statement in _search_0003()._PG_CREATE:
            if statement.startswith(functions):
                op.execute(statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
