"""Deferred search indexing: a bulk insert indexes its new rows once, in one statement.

The database's triggers (migrations ``0003`` and ``0006``) index every row as it is
written; a new contact is indexed again for each email and phone number inserted after
it. Inside :func:`deferred_index` the INSERT triggers stand aside, and the new rows of
the batch are indexed at the end with one ``INSERT ... SELECT`` per search table:

.. code-block:: python

    with deferred_index(session, "contact") as new_ids:
        ...  # INSERT the contacts, their emails and phone numbers
        new_ids.update(ids)

Only the caller's own INSERTs may run inside (no plugin code): an update or delete
there is indexed by its triggers as always, but a row inserted by someone else would
not be indexed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from crm_core.search import _search_tables

#: Entities whose search documents the triggers build.
INDEXED = frozenset({"customer", "contact"})

_SQLITE_PAUSE = text("UPDATE search_state SET paused = :paused WHERE id = 1")
_PG_PAUSE = text("SELECT set_config('crm.search_deferred', :value, true)")

_SQLITE_CONTACTS = text(
    """INSERT INTO search_contact (rowid, name, emails, phones, company)
    SELECT c.id,
           trim(c.first_name || ' ' || c.last_name),
           (SELECT group_concat(e.email, ' ') FROM contact_email AS e WHERE e.contact_id = c.id),
           (SELECT group_concat(p.number || ' ' || coalesce(p.e164, ''), ' ')
              FROM contact_phone AS p WHERE p.contact_id = c.id),
           (SELECT cu.name FROM customer AS cu WHERE cu.id = c.customer_id)
      FROM contact AS c WHERE c.id IN :ids"""
).bindparams(bindparam("ids", expanding=True))
_SQLITE_CONTACT_TRIGRAMS = text(
    "INSERT INTO search_contact_trgm (rowid, name) "
    "SELECT id, trim(first_name || ' ' || last_name) FROM contact WHERE id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_SQLITE_CUSTOMERS = text(
    "INSERT INTO search_customer (rowid, name, email, phone, phone_e164, city) "
    "SELECT id, name, email, phone, phone_e164, city FROM customer WHERE id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_SQLITE_CUSTOMER_TRIGRAMS = text(
    "INSERT INTO search_customer_trgm (rowid, name) SELECT id, name FROM customer WHERE id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_PG_CONTACTS = text("SELECT search_contact_refresh(CAST(:ids AS integer[]))")


@contextmanager
def deferred_index(session: Session, entity: str) -> Iterator[set[int]]:
    """Pause the INSERT triggers of ``entity``'s search index; index the ids added at the end.

    Yields a set: add the ids of the ``entity`` rows inserted inside the block. Does
    nothing special for an entity without a search index, or on a database without
    the search tables.
    """
    new_ids: set[int] = set()
    dialect = session.get_bind().dialect.name
    if entity not in INDEXED or not _deferrable(session, dialect):
        yield new_ids
        return
    _pause(session, dialect, True)
    try:
        yield new_ids
    finally:
        _pause(session, dialect, False)
    if new_ids:
        index_new(session, entity, sorted(new_ids))


def index_new(session: Session, entity: str, ids: list[int]) -> None:
    """Index the new ``entity`` rows ``ids`` (whose INSERT triggers did not run)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        if entity == "contact":  # customers are indexed by an expression index
            session.execute(_PG_CONTACTS, {"ids": ids})
        return
    trigrams = "search_contact_trgm" in _search_tables(session)
    for start in range(0, len(ids), 5000):  # SQLite's bound-parameter limit
        chunk = {"ids": ids[start : start + 5000]}
        if entity == "contact":
            session.execute(_SQLITE_CONTACTS, chunk)
            if trigrams:
                session.execute(_SQLITE_CONTACT_TRIGRAMS, chunk)
        else:
            session.execute(_SQLITE_CUSTOMERS, chunk)
            if trigrams:
                session.execute(_SQLITE_CUSTOMER_TRIGRAMS, chunk)


def _deferrable(session: Session, dialect: str) -> bool:
    if dialect == "postgresql":
        return True
    return dialect == "sqlite" and "search_state" in _search_tables(session)


def _pause(session: Session, dialect: str, paused: bool) -> None:
    if dialect == "sqlite":
        session.execute(_SQLITE_PAUSE, {"paused": int(paused)})
    else:
        session.execute(_PG_PAUSE, {"value": "on" if paused else "off"})
