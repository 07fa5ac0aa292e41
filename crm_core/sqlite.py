"""SQLite connections: pragmas, how transactions begin, and waiting for the write lock.

SQLAlchemy, not the ``sqlite3`` module, emits ``BEGIN`` (SQLAlchemy's pysqlite recipe
"Serializable isolation / Savepoints / Transactional DDL"), so that SAVEPOINTs work and
each transaction can choose its mode through the :data:`BEGIN_OPTION` execution option:
a deferred ``BEGIN`` for reads (no lock until a write), ``BEGIN IMMEDIATE`` for units of
work (:func:`writer_engine`), which take the write lock up front. A deferred transaction
that read and then writes fails with "database is locked" as soon as another connection
has committed since its read, whatever the busy timeout; with ``BEGIN IMMEDIATE``
writers wait for each other instead.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, event

#: Execution option choosing how a transaction begins: ``"DEFERRED"`` (the default, a
#: plain ``BEGIN``) or ``"IMMEDIATE"``. Other databases ignore it.
BEGIN_OPTION = "crm_sqlite_begin"

#: Seconds between two tries to take the write lock.
WRITE_LOCK_POLL = 0.0002

#: WAL pages after which a commit copies them back into the database (SQLite's default is
#: 1,000). Creating a contact writes ~40 pages (its rows, their indexes and the search
#: indexes); each checkpoint also syncs the files twice. With 4,000 (a WAL of up to 16 MB)
#: the API creates ~8% more contacts per second (bench/api_throughput.py).
WAL_AUTOCHECKPOINT = 4000

_BUSY_TIMEOUT = "crm_busy_timeout_ms"


def set_up(engine: Engine) -> None:
    """Give ``engine``'s connections crm-core's SQLite set-up (WAL, foreign keys, BEGIN)."""
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)


def writer_engine(engine: Engine) -> Engine:
    """``engine`` (same pool and events) for transactions that write: ``BEGIN IMMEDIATE``.

    SQLAlchemy's reader/writer split (:meth:`~sqlalchemy.engine.Engine.execution_options`);
    on other databases the option changes nothing.
    """
    return engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})


def _on_connect(dbapi_connection: Any, record: Any) -> None:
    # The sqlite3 module must not begin transactions itself (SQLAlchemy does).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
        record.info[_BUSY_TIMEOUT] = cursor.execute("PRAGMA busy_timeout").fetchone()[0]
    finally:
        cursor.close()


def _on_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
    if mode == "IMMEDIATE":
        _begin_immediate(connection)
    elif mode == "DEFERRED":
        connection.exec_driver_sql("BEGIN")
    else:
        raise ValueError(f"{BEGIN_OPTION}: {mode!r} is not DEFERRED or IMMEDIATE")


def _begin_immediate(connection: Any) -> None:
    """``BEGIN IMMEDIATE``, trying again every :data:`WRITE_LOCK_POLL` while another writes.

    SQLite's own busy handler (the connection's busy timeout) sleeps 1, 2, 5, 10... ms
    between tries, while a unit of work of the API holds the lock for 1-2 ms: an API
    write waited 1.8 ms for the lock on average, against 0.5 ms with these tries
    (bench/api_throughput.py). Python's sqlite3 offers no other busy handler, so the
    tries are made here, for as long as the busy timeout; the last one goes through
    SQLAlchemy, which reports the error ("database is locked") as for any statement.
    """
    timeout_ms = connection.connection.info.get(_BUSY_TIMEOUT)
    if not timeout_ms:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        return
    dbapi_connection = connection.connection.dbapi_connection
    deadline = time.monotonic() + timeout_ms / 1000
    dbapi_connection.execute("PRAGMA busy_timeout = 0")
    try:
        while time.monotonic() < deadline:
            try:
                dbapi_connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                    break
                time.sleep(WRITE_LOCK_POLL)
            else:
                return
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
