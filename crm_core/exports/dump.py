"""The complete dump of a CRM's database as JSON Lines, and restoring it into an empty one.

A dump holds every row of every table of core and of the enabled plugins (the tables
on ``Base.metadata`` that ``crm.registry.models`` names), in foreign-key order and by
primary key within a table, read in one transaction. Not in it: ``alembic_version``
(the restored database gets its own by being migrated) and the search indexes
(``search_*``: SQLite's triggers fill them as rows are restored; on PostgreSQL they
are indexes and a table kept by triggers).

The file::

    {"format": "crm-core-dump", "version": 1, "created_at": ..., "crm_core": "0.1.0",
     "heads": {"crm_core": "0005_core", ...}, "plugins": {...}, "tables": [...]}
    {"table": "user", "row": {"id": 1, "email": ..., "created_at": "2026-...+00:00"}}
    ...
    {"end": "crm-core-dump", "counts": {"user": 3, ...}}

Values are lossless: timestamps in ISO 8601 (with their offset when they have one),
dates and times in ISO 8601, decimals as strings, bytes in base64, JSON columns as
JSON; everything else as JSON has it. The last line counts the rows of each table, so
a truncated file is refused. :func:`restore` loads a dump into a migrated, empty
database whose migration heads are the dump's, in one transaction: all or nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Connection,
    Date,
    DateTime,
    Enum,
    Integer,
    LargeBinary,
    Numeric,
    Table,
    Time,
    Uuid,
    bindparam,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from crm_core import migrate
from crm_core.db import Base, utcnow
from crm_core.errors import CRMError
from crm_core.exports.stream import read_connection, typed_batches
from crm_core.exports.values import base_type
from crm_core.models import Contact, Customer
from crm_core.search_index import deferred_index
from crm_core.version import __version__

if TYPE_CHECKING:
    from crm_core.runtime import CRM

FORMAT = "crm-core-dump"
VERSION = 1
#: Rows per ``executemany`` when restoring.
INSERT_BATCH = 1000

_Codec = Callable[[Any], Any]


class DumpError(CRMError):
    """A dump cannot be restored (or made): the message says why and what to do."""


@dataclass
class DumpSummary:
    """What a dump holds, or what a restore loaded: rows per table."""

    counts: dict[str, int] = field(default_factory=dict)
    heads: dict[str, str | None] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Rows of every table."""
        return sum(self.counts.values())


def dump_tables(crm: CRM) -> list[Table]:
    """The tables a dump of ``crm`` holds, parents before children."""
    owned = crm.registry.models
    return [table for table in Base.metadata.sorted_tables if table.name in owned]


def current_heads(crm: CRM) -> dict[str, str | None]:
    """Each migration branch (core, then plugins) and the revision the database is at."""
    return {branch.branch: branch.current for branch in migrate.status(crm)}


# -- values ----------------------------------------------------------------------------------------


def _codecs(column: Any) -> tuple[_Codec | None, _Codec | None]:
    """How a column's values are written to a dump, and read back: ``None`` as they are."""
    stored = base_type(column.type)
    if isinstance(stored, JSON):
        return None, None
    if isinstance(stored, DateTime):
        return _isoformat, dt.datetime.fromisoformat
    if isinstance(stored, Date):
        return _isoformat, dt.date.fromisoformat
    if isinstance(stored, Time):
        return _isoformat, dt.time.fromisoformat
    if isinstance(stored, Numeric) and not isinstance(stored, Integer):
        if getattr(stored, "asdecimal", True):
            return _text, decimal.Decimal
        return None, None
    if isinstance(stored, LargeBinary):
        return _base64, base64.b64decode
    if isinstance(stored, Uuid) and stored.as_uuid:
        return _text, uuid.UUID
    if isinstance(stored, Enum) and stored.enum_class is not None:
        return _enum_name, None  # the column takes a member's name as well as the member
    return None, None


def _enum_name(value: Any) -> Any:
    return value.name if isinstance(value, enum.Enum) else value


def _isoformat(value: Any) -> Any:
    return None if value is None else value.isoformat()


def _text(value: Any) -> Any:
    return None if value is None else str(value)


def _base64(value: Any) -> Any:
    return None if value is None else base64.b64encode(bytes(value)).decode("ascii")


def _decoder(codec: _Codec) -> _Codec:
    return lambda value: None if value is None else codec(value)


# -- dumping ---------------------------------------------------------------------------------------


def write_dump(crm: CRM, out: IO[bytes]) -> DumpSummary:
    """Write the complete dump of ``crm``'s database to the binary file ``out``."""
    tables = dump_tables(crm)
    summary = DumpSummary(heads=current_heads(crm))
    header = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": utcnow().isoformat(),
        "crm_core": __version__,
        "heads": summary.heads,
        "plugins": {info.name: info.version for info in crm.plugins.enabled},
        "tables": [table.name for table in tables],
    }
    out.write(_line(header))
    with read_connection(crm) as connection:
        for table in tables:
            count = 0
            for chunk in _table_lines(connection, table):
                out.write(chunk[0])
                count += chunk[1]
            summary.counts[table.name] = count
    out.write(_line({"end": FORMAT, "counts": summary.counts}))
    return summary


def _table_lines(connection: Connection, table: Table) -> Iterator[tuple[bytes, int]]:
    """The lines of ``table``'s rows, a batch at a time, with how many rows each holds."""
    columns = list(table.columns)
    names = [column.key for column in columns]
    encoders = [(index, _codecs(column)[0]) for index, column in enumerate(columns)]
    encoders = [(index, codec) for index, codec in encoders if codec is not None]
    prefix = '{"table":' + json.dumps(table.name) + ',"row":'
    statement = select(*columns).order_by(*table.primary_key.columns)
    for rows in typed_batches(connection, statement):
        lines = []
        for row in rows:
            values = list(row)
            for index, codec in encoders:
                values[index] = codec(values[index])
            lines.append(prefix + _json(dict(zip(names, values, strict=True))) + "}\n")
        yield "".join(lines).encode("utf-8"), len(rows)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _line(value: Mapping[str, Any]) -> bytes:
    return (_json(value) + "\n").encode("utf-8")


# -- restoring -------------------------------------------------------------------------------------


@dataclass
class _TablePlan:
    """How one table's rows are inserted."""

    table: Table
    decoders: list[tuple[str, _Codec]]
    deferred: list[str]
    """Columns referring to this table or to one restored later: inserted as NULL, set after."""
    onupdate: list[str]
    """Columns with an ``onupdate`` default, written again when the deferred ones are set."""
    keys: list[str]


def restore(crm: CRM, lines: Iterable[bytes | str]) -> DumpSummary:
    """Load the dump ``lines`` (a binary or text file) into ``crm``'s database.

    The database is migrated first if it has no tables at all; it must then be empty,
    and at the migration revisions the dump was made at. Everything is inserted in one
    transaction, so a dump that turns out truncated or broken restores nothing.
    PostgreSQL's sequences continue after the restored ids.
    """
    reader = iter(lines)
    header = _header(next(reader, None))
    known = {table.name: table for table in dump_tables(crm)}
    unknown = [name for name in header["tables"] if name not in known]
    if unknown:
        raise DumpError(
            f"the dump holds table(s) {', '.join(unknown)}, which neither core nor an enabled "
            "plugin declares: install and enable the plugin(s) the dump was made with"
        )
    if not inspect(crm.engine).get_table_names():
        migrate.upgrade(crm)
    heads = current_heads(crm)
    if heads != header["heads"]:
        raise DumpError(
            "the database's migration revisions differ from the dump's: dump "
            f"{_heads(header['heads'])}, database {_heads(heads)}. Restore into a database "
            "of the same crm-core and plugins, migrated to the same revisions"
        )
    order = header["tables"]
    plans = {name: _plan(known[name], order) for name in order}
    summary = DumpSummary(heads=heads)
    with crm.write_engine.begin() as connection:
        _refuse_rows(connection, list(known.values()))
        # Index customers and contacts for search once, at the end, rather than per row
        # and again per email and phone (crm_core.search_index).
        session = Session(bind=connection)
        with (
            deferred_index(session, "customer") as customer_ids,
            deferred_index(session, "contact") as contact_ids,
        ):
            footer = _insert_rows(connection, reader, order, plans, summary)
            customer_ids.update(connection.scalars(select(Customer.id)))
            contact_ids.update(connection.scalars(select(Contact.id)))
        if footer is None:
            raise DumpError("the dump is truncated: its last line (the row counts) is missing")
        if footer.get("counts") != summary.counts:
            raise DumpError(
                f"the dump is damaged: its last line counts {footer.get('counts')}, "
                f"but it holds {summary.counts}"
            )
        if connection.dialect.name == "postgresql":
            _restart_sequences(connection, [known[name] for name in order])
    return summary


def _header(line: bytes | str | None) -> dict[str, Any]:
    if line is None:
        raise DumpError("the file is empty, not a crm-core dump")
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DumpError("the file is not a crm-core dump (made with `crm export --all`)")
    if header.get("version") != VERSION:
        raise DumpError(
            f"the dump is of format version {header.get('version')}; this crm-core reads "
            f"version {VERSION}"
        )
    if not isinstance(header.get("tables"), list) or not isinstance(header.get("heads"), dict):
        raise DumpError("the dump's first line lacks its tables or migration heads")
    return header


def _heads(heads: Mapping[str, Any]) -> str:
    return ", ".join(f"{branch} at {revision or 'nothing'}" for branch, revision in heads.items())


def _plan(table: Table, order: list[str]) -> _TablePlan:
    position = order.index(table.name)
    deferred = sorted(
        {
            fk.parent.key
            for fk in table.foreign_keys
            if fk.column.table.name not in order[:position]
        }
    )
    decoders = []
    for column in table.columns:
        decode = _codecs(column)[1]
        if decode is not None:
            decoders.append((column.key, _decoder(decode)))
    onupdate = [column.key for column in table.columns if column.onupdate is not None]
    keys = [column.key for column in table.primary_key.columns]
    return _TablePlan(table, decoders, deferred, onupdate, keys)


def _refuse_rows(connection: Connection, tables: list[Table]) -> None:
    filled = [
        table.name
        for table in tables
        if connection.execute(select(1).select_from(table).limit(1)).first() is not None
    ]
    if filled:
        raise DumpError(
            f"the database is not empty (rows in {', '.join(filled)}): restore into a new, "
            "empty database"
        )


def _insert_rows(
    connection: Connection,
    reader: Iterator[bytes | str],
    order: list[str],
    plans: dict[str, _TablePlan],
    summary: DumpSummary,
) -> dict[str, Any] | None:
    """Insert every row line; return the footer (``None`` when the file ends without one)."""
    pending: list[dict[str, Any]] = []
    later: dict[str, list[dict[str, Any]]] = {}
    current: str | None = None
    done: set[str] = set()
    footer = None
    for number, raw in enumerate(reader, start=2):
        try:
            item = json.loads(raw)
        except ValueError as exc:
            raise DumpError(f"line {number} of the dump is not JSON ({exc})") from exc
        if not isinstance(item, dict):
            raise DumpError(f"line {number} of the dump is not a JSON object")
        if "end" in item:
            footer = item
            if next(reader, None) is not None:
                raise DumpError(f"the dump goes on after its last line ({number})")
            break
        name, row = item.get("table"), item.get("row")
        if name not in plans or not isinstance(row, dict):
            raise DumpError(f"line {number}: no table {name!r} in the dump's header")
        if name != current:
            if current is not None:
                _flush(connection, plans[current], pending, later)
                done.add(current)
            if name in done:
                raise DumpError(f"line {number}: rows of {name} after those of another table")
            current = name
            summary.counts.setdefault(name, 0)
        plan = plans[name]
        unknown = set(row) - set(plan.table.c.keys())
        if unknown:
            raise DumpError(f"line {number}: {name} has no column(s) {', '.join(sorted(unknown))}")
        for key, decode in plan.decoders:
            if key in row:
                row[key] = decode(row[key])
        pending.append(row)
        summary.counts[name] += 1
        if len(pending) >= INSERT_BATCH:
            _flush(connection, plan, pending, later)
    if current is not None:
        _flush(connection, plans[current], pending, later)
    for name in order:
        summary.counts.setdefault(name, 0)
        if later.get(name):
            _set_deferred(connection, plans[name], later[name])
    return footer


def _flush(
    connection: Connection,
    plan: _TablePlan,
    pending: list[dict[str, Any]],
    later: dict[str, list[dict[str, Any]]],
) -> None:
    if not pending:
        return
    if plan.deferred:
        for row in pending:
            values = {key: row[key] for key in plan.deferred if row.get(key) is not None}
            if values:
                later.setdefault(plan.table.name, []).append(
                    {
                        **{f"key_{key}": row[key] for key in plan.keys},
                        **values,
                        **{key: row[key] for key in plan.onupdate if key in row},
                    }
                )
                for key in values:
                    row[key] = None
    connection.execute(insert(plan.table), pending)
    pending.clear()


def _set_deferred(connection: Connection, plan: _TablePlan, rows: list[dict[str, Any]]) -> None:
    """Set the references that had to wait for their rows (``merged_into_id``...)."""
    table = plan.table
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        columns = tuple(sorted(key for key in row if not key.startswith("key_")))
        by_columns.setdefault(columns, []).append(row)
    for columns, group in by_columns.items():
        statement = (
            update(table)
            .where(*(table.c[key] == bindparam(f"key_{key}") for key in plan.keys))
            .values({key: bindparam(key) for key in columns})
        )
        connection.execute(statement, group)


def _restart_sequences(connection: Connection, tables: list[Table]) -> None:
    """Make PostgreSQL's id sequences continue after the highest restored id."""
    preparer = connection.dialect.identifier_preparer
    for table in tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, Integer):
            continue
        column = keys[0]
        sequence = connection.execute(
            select(func.pg_get_serial_sequence(preparer.format_table(table), column.name))
        ).scalar()
        if sequence is None:
            continue
        connection.execute(
            text(
                f"SELECT setval(:sequence, coalesce((SELECT max({preparer.quote(column.name)}) "
                f"FROM {preparer.format_table(table)}), 0) + 1, false)"
            ),
            {"sequence": sequence},
        )
