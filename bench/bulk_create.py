"""Benchmark: ``customers.bulk_create`` against a raw SQLAlchemy Core executemany.

Both paths store the same pre-generated, realistic customer rows (and their tags)
in a fresh database of their own: the service path validates every row, checks
owners, calls the hooks once per batch and writes an audit entry and an outbox event
per customer; the raw path only inserts. Run ``python bench/bulk_create.py --help``;
see bench/README.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

from crm_core import CRM, migrate
from crm_core.config import load_settings
from crm_core.demo import customer_rows
from crm_core.models import AuditEntry, Customer, CustomerTag, OutboxEvent
from crm_core.services import customers, users

OWNERS = 3


@dataclass
class Timing:
    """One path's result."""

    label: str
    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.seconds


def main(argv: Sequence[str] | None = None) -> None:
    """Parse options, generate the rows, run both paths on SQLite (and PostgreSQL)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="customers to insert")
    parser.add_argument(
        "--batch-size", type=int, default=None,
        help="rows per bulk_create call and per transaction (default: the bulk_batch_size "
        "setting, 1000)",
    )
    parser.add_argument(
        "--database-url", default=None,
        help="also run on this PostgreSQL server, e.g. postgresql+psycopg://postgres@127.0.0.1/test;"
        " scratch databases are created and dropped there",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated rows")
    parser.add_argument(
        "--plugins", action="store_true", help="load the installed plugins (default: core only)"
    )
    args = parser.parse_args(argv)
    if args.database_url and make_url(args.database_url).get_backend_name() != "postgresql":
        parser.error("--database-url must be a postgresql+psycopg:// URL (SQLite always runs)")

    batch_size = args.batch_size or load_settings(environ={}).bulk_batch_size
    print(f"crm-core bulk_create benchmark: {args.rows:,} customers, batches of {batch_size:,}")
    started = time.perf_counter()
    rows = customer_rows(args.rows, seed=args.seed, owner_ids=[None, *range(1, OWNERS + 1)])
    tags = sum(len(row["tags"]) for row in rows)
    print(f"generated the rows ({tags:,} tags) in {time.perf_counter() - started:.1f} s "
          "(not timed)")

    with tempfile.TemporaryDirectory(prefix="crm-bench-") as folder:
        targets: list[tuple[str, Any]] = [("SQLite", sqlite_databases(Path(folder)))]
        if args.database_url:
            targets.append(("PostgreSQL", postgres_databases(args.database_url)))
        for name, databases in targets:
            with databases as (service_url, raw_url):
                print(f"\n{name}")
                service = run_service(service_url, Path(folder), rows, batch_size, args.plugins)
                raw = run_raw(raw_url, Path(folder), rows, batch_size)
                report(service, raw)


# -- the two paths -------------------------------------------------------------------------


def make_crm(url: str, folder: Path, plugins: bool) -> CRM:
    """A migrated CRM on ``url`` with the owners the rows refer to."""
    settings = load_settings(
        {"database_url": url, "instance_path": str(folder), "secret_key": "bench-secret-key-0123"},
        environ={},
    )
    crm = CRM(settings, discover_plugins=plugins)
    migrate.upgrade(crm)
    with crm.unit_of_work(source="bench") as uow:
        users.ensure_default_roles(uow)
        ids = [
            users.create(
                uow, {"email": f"owner{n}@example.com", "password": "bench-password",
                      "roles": ["sales"]},
            ).id
            for n in range(1, OWNERS + 1)
        ]
    assert ids == list(range(1, OWNERS + 1)), ids
    return crm


def run_service(
    url: str, folder: Path, rows: list[dict[str, Any]], batch_size: int, plugins: bool
) -> Timing:
    """``customers.bulk_create`` per batch, one unit of work (transaction) each."""
    crm = make_crm(url, folder, plugins)
    try:
        started = time.perf_counter()
        for start in range(0, len(rows), batch_size):
            with crm.unit_of_work(source="bench") as uow:
                result = customers.bulk_create(uow, rows[start:start + batch_size])
                if result.errors:
                    raise SystemExit(f"rows refused: {dict(list(result.errors.items())[:3])}")
        seconds = time.perf_counter() - started
        check(crm, rows, audited=True)
    finally:
        crm.dispose()
    return Timing("customers.bulk_create", len(rows), seconds)


def run_raw(url: str, folder: Path, rows: list[dict[str, Any]], batch_size: int) -> Timing:
    """``insert(Customer.__table__)`` executemany per batch (explicit ids), then the tags."""
    crm = make_crm(url, folder, plugins=False)
    table, tag_table = Customer.__table__, CustomerTag.__table__
    try:
        with crm.engine.connect() as connection:
            first_id = (connection.scalar(select(func.max(table.c.id))) or 0) + 1
        started = time.perf_counter()
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            values = []
            tag_rows = []
            for offset, row in enumerate(batch):
                ident = first_id + start + offset
                values.append({"id": ident, **{k: v for k, v in row.items() if k != "tags"}})
                tag_rows.extend({"customer_id": ident, "tag": tag} for tag in row["tags"])
            with crm.engine.begin() as connection:
                connection.execute(insert(table), values)
                if tag_rows:
                    connection.execute(insert(tag_table), tag_rows)
        seconds = time.perf_counter() - started
        check(crm, rows, audited=False)
        if crm.engine.dialect.name == "postgresql":
            with crm.engine.begin() as connection:  # explicit ids left the sequence behind
                connection.execute(
                    text("SELECT setval(pg_get_serial_sequence('customer', 'id'), "
                         "(SELECT max(id) FROM customer))")
                )
    finally:
        crm.dispose()
    return Timing("Core insert executemany", len(rows), seconds)


def check(crm: CRM, rows: list[dict[str, Any]], *, audited: bool) -> None:
    """Both paths must have stored every customer and tag (and only the service audits)."""
    with crm.engine.connect() as connection:
        stored = connection.scalar(select(func.count()).select_from(Customer))
        tags = connection.scalar(select(func.count()).select_from(CustomerTag))
        audit = connection.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.entity == "customer")
        )
        events = connection.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.entity == "customer")
        )
    assert stored == len(rows), (stored, len(rows))
    assert tags == sum(len(row["tags"]) for row in rows), tags
    expected = len(rows) if audited else 0
    assert audit == events == expected, (audit, events, expected)


def report(service: Timing, raw: Timing) -> None:
    """Print both timings and their ratio."""
    notes = {service.label: "validated, audited, outbox event", raw.label: "insert only"}
    for timing in (service, raw):
        print(f"  {timing.label:<24} {timing.rows:>9,} rows {timing.seconds:>8.2f} s "
              f"{timing.rate:>10,.0f} rows/s   ({notes[timing.label]})")
    print(f"  ratio raw / service: {raw.rate / service.rate:.1f}x "
          f"({1e6 / service.rate:.0f} µs per row through the service, {1e6 / raw.rate:.0f} raw)")


# -- scratch databases ---------------------------------------------------------------------


@contextmanager
def sqlite_databases(folder: Path) -> Iterator[tuple[str, str]]:
    """Two fresh SQLite files (deleted with the temporary folder)."""
    yield f"sqlite:///{folder / 'service.sqlite3'}", f"sqlite:///{folder / 'raw.sqlite3'}"


@contextmanager
def postgres_databases(url: str) -> Iterator[tuple[str, str]]:
    """Two scratch databases on the server of ``url``, dropped afterwards."""
    base = make_url(url)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    names = [f"crm_bench_{uuid.uuid4().hex[:10]}_{kind}" for kind in ("service", "raw")]
    try:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield tuple(  # type: ignore[misc]
            base.set(database=name).render_as_string(hide_password=False) for name in names
        )
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
