"""Exports written by several processes: each renders a range of ids, the parent writes them.

A CSV export of a million contacts spends its time in Python (building rows, writing
CSV), one core's worth. :func:`write_parallel` splits the id space of a core entity
into ranges; forked worker processes read and render a range each (same columns,
same visibility, same batching as :meth:`Export.chunks <crm_core.exports.Export.chunks>`)
and the parent writes their text in id order, so the file is byte for byte the one a
single process writes. At most two ranges per worker are in flight: memory stays flat.

What the ranges read:

- **PostgreSQL**: one snapshot. The parent's ``REPEATABLE READ`` transaction exports
  its snapshot (``pg_export_snapshot()``) and every worker's transaction adopts it
  (``SET TRANSACTION SNAPSHOT``), as ``pg_dump --jobs`` does.
- **SQLite**: each range in a read transaction of its own. The ids are bounded when
  the export starts, so a record appears once, as it was when its range was read;
  records added during the export are left out.

Workers are forked (Linux): they inherit the CRM, its plugins and the export as
prepared, and open connections of their own. Where ``fork`` is not available (or a
CRM's sessions are bound to one connection, as in tests), the export runs in this
process.
"""

from __future__ import annotations

import multiprocessing
import re
import sys
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import Connection, Engine, func, select

from crm_core.exports.runner import Export
from crm_core.exports.sources import EntitySource
from crm_core.exports.stream import read_connection

#: Records per range below which a range is not worth a process of its own.
MIN_RANGE = 10_000
#: Records per range at most: what one range's text costs in memory (~100 bytes a record).
MAX_RANGE = 20_000
#: Ranges per worker, at least: small enough that the workers finish together.
RANGES_PER_WORKER = 4
_SNAPSHOT = re.compile(r"^[0-9A-Fa-f-]+$")


@dataclass(frozen=True)
class _Work:
    """What a forked worker needs: inherited, never pickled."""

    export: Export
    snapshot: str | None


#: The export being written, set in the parent just before its workers are forked.
_work: _Work | None = None


def can_run_parallel(export: Export) -> bool:
    """Whether ``export`` can be split among processes here (see the module's text)."""
    if not isinstance(export.source, EntitySource) or not sys.platform.startswith("linux"):
        return False
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    with export.crm.session_factory() as session:
        return isinstance(session.get_bind(), Engine)


def write_parallel(export: Export, out: BinaryIO, jobs: int) -> int:
    """Write ``export`` to ``out`` with up to ``jobs`` worker processes; return its records.

    Falls back to :meth:`Export.write` (this process) for one job, an export that cannot
    run in parallel here, or one too small to split.
    """
    if jobs < 2 or not can_run_parallel(export):
        return export.write(out)
    assert isinstance(export.source, EntitySource)
    with read_connection(export.crm) as connection:
        low, high = connection.execute(
            select(func.min(export.source.table.c.id), func.max(export.source.table.c.id))
        ).one()
        ranges = id_ranges(low, high, jobs)
        if len(ranges) < 2:
            for chunk in export.chunks(connection):
                out.write(chunk.encode("utf-8"))
            return export.rows
        # An empty range: the header row (and byte order mark) of a CSV file, else nothing.
        out.write("".join(export.chunks(connection, ids=(1, 0))).encode("utf-8"))
        rows = _write_ranges(export, out, ranges, jobs, _export_snapshot(connection))
    export.rows = rows
    return rows


def id_ranges(low: int | None, high: int | None, jobs: int) -> list[tuple[int, int]]:
    """Closed ranges that cover ``low..high`` in order, sized for ``jobs`` workers."""
    if low is None or high is None:
        return []
    width = high - low + 1
    size = min(MAX_RANGE, max(MIN_RANGE, -(-width // (jobs * RANGES_PER_WORKER))))
    return [(start, min(start + size - 1, high)) for start in range(low, high + 1, size)]


def _write_ranges(
    export: Export,
    out: BinaryIO,
    ranges: list[tuple[int, int]],
    jobs: int,
    snapshot: str | None,
) -> int:
    global _work
    _work = _Work(export, snapshot)
    rows = 0
    pool = ProcessPoolExecutor(
        jobs, mp_context=multiprocessing.get_context("fork"), initializer=_start_worker
    )
    try:
        pending: deque[Future[tuple[int, bytes]]] = deque()
        for ids in ranges:
            pending.append(pool.submit(_render, ids))
            if len(pending) >= 2 * jobs:
                rows += _write_next(pending, out)
        while pending:
            rows += _write_next(pending, out)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        _work = None
    pool.shutdown(wait=True)
    return rows


def _write_next(pending: deque[Future[tuple[int, bytes]]], out: BinaryIO) -> int:
    count, text = pending.popleft().result()
    out.write(text)
    return count


def _export_snapshot(connection: Connection) -> str | None:
    """PostgreSQL: the id of this transaction's snapshot, for the workers to share."""
    if connection.dialect.name != "postgresql":
        return None
    return str(connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())


def _start_worker() -> None:
    """In a forked worker: never touch the parent's pooled connections."""
    assert _work is not None
    _work.export.crm.engine.dispose(close=False)


def _render(ids: tuple[int, int]) -> tuple[int, bytes]:
    """In a worker: the records of ``ids`` as the export's text (no header), and their count."""
    assert _work is not None
    export = _work.export
    with read_connection(export.crm) as connection:
        if _work.snapshot is not None:
            if not _SNAPSHOT.match(_work.snapshot):
                raise ValueError(f"not a snapshot id: {_work.snapshot!r}")
            connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{_work.snapshot}'")
        text = "".join(export.chunks(connection, ids=ids, header=False))
    return export.rows, text.encode("utf-8")
