"""A large SQLite database for read benchmarks: 1,000,000 customers, 10,000,000 interactions.

Built once with sqlite3 ``executemany`` straight into the migrated schema (the
service path would take hours for ten million interactions, and the read
benchmarks measure reads), then reused: ``build()`` returns at once when the file
already holds the asked-for sizes. Run it alone to build or check the file::

    .venv/bin/python bench/large_dataset.py --customers 1000000 --interactions 10000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from crm_core import CRM, migrate
from crm_core.config import load_settings
from crm_core.models import CORE_CHANNELS

DEFAULT_PATH = Path("/tmp/crm-bench/large.sqlite3")
CHANNELS = CORE_CHANNELS
UNDIRECTED = {"note", "web", "purchase"}
STAGES = ("lead", "prospect", "customer", "former")
WORDS = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Wonka",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Aperture",
    "Massive",
    "Dynamic",
    "Oscorp",
    "Gringotts",
    "Monarch",
    "Nakatomi",
    "Paper",
    "Dunder",
    "Mifflin",
    "Pied",
    "Piper",
    "Bluth",
    "Sterling",
    "Cooper",
    "Prestige",
    "Worldwide",
    "Vehement",
    "Capital",
    "Nordic",
    "Baltic",
    "Alpine",
    "Coastal",
    "Metro",
]
SUFFIXES = ("GmbH", "AG", "Ltd", "Inc", "LLC", "SA", "AB", "Oy", "BV", "")
BATCH = 50_000


def build(path: Path, customers: int, interactions: int, *, seed: int = 7) -> Path:
    """Make (or reuse) a migrated SQLite file with ``customers`` and ``interactions`` rows."""
    if _sizes(path) == (customers, interactions):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    crm = CRM(
        load_settings(
            {"database_url": f"sqlite:///{path}", "instance_path": str(path.parent), "plugins": []},
            environ={},
        ),
        discover_plugins=False,
    )
    migrate.upgrade(crm)
    crm.dispose()
    rng = random.Random(seed)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("PRAGMA cache_size=-400000")
    started = time.perf_counter()
    now = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO user (id, email, name, active, failed_logins, created_at, updated_at) "
        "VALUES (?, ?, ?, 1, 0, ?, ?)",
        [(i, f"seller{i}@example.com", f"Seller {i}", _ts(now), _ts(now)) for i in range(1, 51)],
    )
    for rows in _batches(_customers(rng, customers, now), BATCH):
        connection.executemany(
            "INSERT INTO customer (id, kind, name, email, phone, phone_e164, city, country, "
            "lifecycle_stage, owner_id, attributes, archived, created_at, updated_at, version) "
            "VALUES (?, 'company', ?, ?, ?, ?, ?, 'DE', ?, ?, '{}', 0, ?, ?, 1)",
            rows,
        )
    connection.execute("COMMIT")
    print(f"  {customers:,} customers in {time.perf_counter() - started:.0f} s", flush=True)
    connection.execute("BEGIN")
    for rows in _batches(_interactions(rng, customers, interactions, now), BATCH):
        connection.executemany(
            "INSERT INTO interaction (customer_id, channel, direction, occurred_at, subject, "
            "body, user_id, source, archived, created_at, updated_at, version) "
            "VALUES (?, ?, ?, ?, ?, '', ?, 'bench', 0, ?, ?, 1)",
            rows,
        )
    connection.execute("COMMIT")
    connection.execute("ANALYZE")
    connection.close()
    print(
        f"  {interactions:,} interactions, {time.perf_counter() - started:.0f} s in all", flush=True
    )
    return path


def _sizes(path: Path) -> tuple[int, int] | None:
    if not path.is_file():
        return None
    try:
        with sqlite3.connect(path) as connection:
            customers = connection.execute("SELECT max(id) FROM customer").fetchone()[0] or 0
            interactions = connection.execute("SELECT max(id) FROM interaction").fetchone()[0]
            return customers, interactions or 0
    except sqlite3.Error:
        return None


def _ts(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _customers(rng: random.Random, count: int, now: dt.datetime) -> Iterator[tuple]:
    stamp = _ts(now)
    for ident in range(1, count + 1):
        name = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {ident} {rng.choice(SUFFIXES)}".strip()
        digits = f"{30_000_000 + ident:08d}"
        yield (
            ident,
            name,
            f"info{ident}@{name.split()[0].lower()}.example",
            f"+49 30 {digits}",
            f"+4930{digits}",
            rng.choice(("Berlin", "Hamburg", "Munich", "Cologne", "Leipzig")),
            rng.choice(STAGES),
            rng.randint(1, 50),
            stamp,
            stamp,
        )


def _interactions(
    rng: random.Random, customers: int, count: int, now: dt.datetime
) -> Iterator[tuple]:
    stamp = _ts(now)
    span = 2 * 365 * 24 * 3600
    for _ in range(count):
        channel = rng.choice(CHANNELS)
        direction = None if channel in UNDIRECTED else rng.choice(("in", "out"))
        occurred = now - dt.timedelta(seconds=rng.randrange(span))
        yield (
            rng.randint(1, customers),
            channel,
            direction,
            _ts(occurred),
            f"{channel.capitalize()} about the {rng.choice(WORDS)} account",
            rng.randint(1, 50),
            stamp,
            stamp,
        )


def _batches(rows: Iterator[tuple], size: int) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def main(argv: Sequence[str] | None = None) -> None:
    """Build the file from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=10_000_000)
    options = parser.parse_args(argv)
    build(options.path, options.customers, options.interactions)
    print(f"{options.path}: {_sizes(options.path)}")


if __name__ == "__main__":
    main()
