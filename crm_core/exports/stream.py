"""Reading rows for exports: one read transaction, batches of a few thousand rows.

A statement is executed once and its rows are fetched a batch at a time (a server-side
cursor on PostgreSQL, SQLite's own stepping cursor), so memory stays flat whatever the
number of rows. Statements whose columns need no result processing (see
:func:`crm_core.exports.values.csv_text`) are read on SQLite straight from the
driver's cursor, as plain tuples: building SQLAlchemy rows costs about a fifth of a
CSV export's time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Executable

if TYPE_CHECKING:
    from crm_core.runtime import CRM

#: Rows per batch: per batch, one fetch, one query per child table and one write.
BATCH_SIZE = 5000


@contextmanager
def read_connection(crm: CRM) -> Iterator[Connection]:
    """A connection in a read transaction of ``crm``'s database, rolled back at the end.

    Every statement of an export or a dump sees the same snapshot: SQLite's read
    transaction is one; on PostgreSQL the transaction is ``REPEATABLE READ`` (unless
    the CRM's sessions are bound to a connection that is in a transaction already, as
    in tests).
    """
    with crm.session_factory() as session:
        options: dict[str, Any] = {}
        if isinstance(session.get_bind(), Engine) and crm.engine.dialect.name == "postgresql":
            options["isolation_level"] = "REPEATABLE READ"
        yield session.connection(execution_options=options)


def raw_batches(
    connection: Connection, statement: Executable, size: int = BATCH_SIZE
) -> Iterator[Sequence[Any]]:
    """Rows of ``statement`` in lists of ``size``, as tuples; columns must need no processing."""
    if connection.dialect.name != "sqlite":
        for rows in typed_batches(connection, statement, size):
            yield [tuple(row) for row in rows]
        return
    result = connection.execute(statement)
    cursor = result.cursor  # pysqlite steps through the rows as they are fetched
    try:
        while rows := cursor.fetchmany(size):
            yield rows
    finally:
        result.close()


def typed_batches(
    connection: Connection, statement: Executable, size: int = BATCH_SIZE
) -> Iterator[Sequence[Any]]:
    """Rows of ``statement`` in lists of ``size``, with every column's Python type."""
    result = connection.execute(statement.execution_options(yield_per=size))  # type: ignore[attr-defined]
    try:
        yield from result.partitions()
    finally:
        result.close()


def raw_all(connection: Connection, statement: Executable) -> Sequence[Any]:
    """Every row of a small ``statement`` (a batch's children), as tuples."""
    result = connection.execute(statement)
    try:
        if connection.dialect.name == "sqlite":
            return result.cursor.fetchall()  # type: ignore[no-any-return]
        return [tuple(row) for row in result]
    finally:
        result.close()
