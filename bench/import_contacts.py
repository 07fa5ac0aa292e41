"""Benchmark: importing contacts from a CSV file into SQLite, against a raw executemany.

Generates a realistic contacts CSV (fixed seed, not timed), imports it through the
same path as ``crm import contacts FILE`` (an import job run by
``crm_core.imports.run_import_job``: reading, mapping, validation, ``crm_validate``,
bulk writes, audit, outbox, commits) into a fresh migrated SQLite file, in a child
process whose peak RSS is read, then inserts the same rows with ``sqlite3``
``executemany`` into a fresh file of the same schema, indexing them for search as the
import does (one statement per batch). Prints rows/s, the ratio and the peak memory.
Run ``python bench/import_contacts.py --help``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRST = ("Anna", "Ben", "Chloé", "David", "Emma", "Felix", "Grace", "Hugo", "Ines", "Jonas",
         "Karin", "Liam", "María", "Noah", "Olga", "Paul", "Quentin", "Rosa", "Søren", "Tara")
LAST = ("Müller", "Smith", "García", "Rossi", "Dubois", "Nowak", "Jensen", "O'Brien", "Kim",
        "Silva", "Novák", "Schmidt", "Lefèvre", "Andersen", "Costa", "Yilmaz", "Brown", "Khan")
TITLES = ("Sales Manager", "CTO", "Buyer", "Office Manager", "Engineer", "CEO", "Accountant",
          "Head of Procurement", "", "")
DOMAINS = ("example.com", "example.org", "mail.example", "corp.example", "shop.example")
HEADER = ["external_id", "first_name", "last_name", "email", "email_home", "phone", "job_title"]


def generate(path: Path, rows: int, seed: int) -> None:
    """Write ``rows`` contacts: names, 1-2 emails, a phone, a job title, an external id."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for number in range(1, rows + 1):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            local = f"{first}.{last}{number}".lower().replace("'", "")
            home = f"{local}@home.example" if rng.random() < 0.5 else ""
            phone = f"+49 30 {rng.randrange(1000000, 9999999)}" if rng.random() < 0.8 else ""
            writer.writerow([f"EXT-{number:08d}", first, last,
                             f"{local}@{rng.choice(DOMAINS)}", home, phone, rng.choice(TITLES)])


def settings(database: Path, folder: Path):
    """Settings of a CRM on ``database`` with no plugins discovered."""
    from crm_core.config import load_settings

    return load_settings(
        {"database_url": f"sqlite:///{database}", "instance_path": str(folder),
         "secret_key": "bench-secret-key-bench-secret-key"},
        environ={},
    )


def migrated(database: Path, folder: Path) -> None:
    """A fresh SQLite file migrated to every head."""
    from crm_core import CRM, migrate

    crm = CRM(settings(database, folder), discover_plugins=False)
    try:
        migrate.upgrade(crm)
    finally:
        crm.dispose()


def child(csv_path: Path, database: Path, folder: Path, batch_size: int | None,
          profile: str | None) -> None:
    """Run the import as the CLI does and print its figures as JSON (in the child process)."""
    from crm_core import CRM
    from crm_core.imports import ImportOptions, create_job, run_import_job
    from crm_core.models import ImportJob

    crm = CRM(settings(database, folder), discover_plugins=False)
    options = ImportOptions(entity="contacts", batch_size=batch_size)
    spent = _measure_parts(crm)
    started = time.perf_counter()
    with crm.unit_of_work(source="cli") as uow:
        job_id = create_job(uow, path=csv_path, filename=csv_path.name, options=options).id
    if profile:
        import cProfile

        cProfile.runctx("run_import_job(crm, job_id)", globals(), locals(), profile)
    else:
        run_import_job(crm, job_id)
    seconds = time.perf_counter() - started
    with crm.session_factory() as session:
        job = session.get(ImportJob, job_id)
        figures = {
            "seconds": seconds,
            "status": job.status,
            "error": job.error,
            "rows": job.processed_rows,
            "created": job.created_count,
            "rejected": job.rejected_count,
            "sql_seconds": spent["sql"],
            "schema_seconds": spent["schema"],
            "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "vmhwm_kib": _vmhwm(),
        }
    crm.dispose()
    print(json.dumps(figures))


def _measure_parts(crm) -> dict[str, float]:
    """Add up the time spent in the database (statements and their triggers) and in
    marshmallow's ``load``, to tell where an import's time goes."""
    from sqlalchemy import event

    spent = {"sql": 0.0, "schema": 0.0}
    starts: list[float] = []

    def before(*_args) -> None:
        starts.append(time.perf_counter())

    def after(*_args) -> None:
        spent["sql"] += time.perf_counter() - starts.pop()

    # The write engine shares the CRM engine's events: listening on the engine sees both.
    event.listen(crm.engine, "before_cursor_execute", before)
    event.listen(crm.engine, "after_cursor_execute", after)

    schema = crm.loader("contact")
    load = schema.load

    def timed_load(*args, **kwargs):
        begun = time.perf_counter()
        try:
            return load(*args, **kwargs)
        finally:
            spent["schema"] += time.perf_counter() - begun

    schema.load = timed_load  # type: ignore[method-assign]
    return spent


def _vmhwm() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


#: What crm_core.search_index does for a batch of new contacts, as plain SQL (ids lo..hi).
RAW_INDEX = (
    """INSERT INTO search_contact (rowid, name, emails, phones, company)
    SELECT c.id, trim(c.first_name || ' ' || c.last_name),
           (SELECT group_concat(e.email, ' ') FROM contact_email AS e WHERE e.contact_id = c.id),
           (SELECT group_concat(p.number || ' ' || coalesce(p.e164, ''), ' ')
              FROM contact_phone AS p WHERE p.contact_id = c.id),
           (SELECT cu.name FROM customer AS cu WHERE cu.id = c.customer_id)
      FROM contact AS c WHERE c.id BETWEEN ? AND ?""",
    "INSERT INTO search_contact_trgm (rowid, name) "
    "SELECT id, trim(first_name || ' ' || last_name) FROM contact WHERE id BETWEEN ? AND ?",
)


def raw(csv_path: Path, database: Path, batch_size: int) -> tuple[float, int]:
    """``executemany`` of the same contacts, emails and phones, indexed for search the way
    the import does it (triggers paused, one statement per batch); seconds of the SQL only.
    """
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    now = time.strftime("%Y-%m-%d %H:%M:%S.000000")
    indexed = connection.execute(
        "SELECT count(*) FROM sqlite_master WHERE name = 'search_state'"
    ).fetchone()[0] and connection.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'search_%'"
    ).fetchone()[0]
    timed = 0.0
    total = 0
    with csv_path.open(encoding="utf-8", newline="") as source:
        reader = csv.reader(source)
        next(reader)
        ident = 0
        while True:
            chunk = [row for _n, row in zip(range(batch_size), reader, strict=False)]
            if not chunk:
                break
            people, emails, phones = [], [], []
            for external_id, first, last, email, home, phone, title in chunk:
                ident += 1
                people.append((ident, first, last, title or None, external_id, now, now))
                emails.append((ident, "work", email, 0))
                if home:
                    emails.append((ident, "home", home, 1))
                if phone:
                    phones.append((ident, "work", phone, 0))
            started = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            if indexed:
                connection.execute("UPDATE search_state SET paused = 1")
            connection.executemany(
                "INSERT INTO contact (id, first_name, last_name, job_title, external_id, "
                "consent_email, consent_phone, attributes, archived, version, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, 0, 0, '{}', 0, 1, ?, ?)",
                people,
            )
            connection.executemany(
                "INSERT INTO contact_email (contact_id, label, email, position) VALUES (?,?,?,?)",
                emails,
            )
            connection.executemany(
                "INSERT INTO contact_phone (contact_id, label, number, position) VALUES (?,?,?,?)",
                phones,
            )
            if indexed:
                connection.execute("UPDATE search_state SET paused = 0")
                for statement in RAW_INDEX:
                    connection.execute(statement, (people[0][0], people[-1][0]))
            connection.execute("COMMIT")
            timed += time.perf_counter() - started
            total += len(chunk)
    connection.close()
    return timed, total


def drop_search_triggers(database: Path) -> None:
    """Drop the triggers that keep the search index (diagnosis: what they cost)."""
    connection = sqlite3.connect(database)
    names = [row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'search_%'"
    )]
    for name in names:
        connection.execute(f'DROP TRIGGER "{name}"')
    connection.commit()
    connection.close()


def main() -> None:
    """Generate, import in a child process, insert raw, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="contacts in the CSV file")
    parser.add_argument("--path", type=Path, default=None,
                        help="folder for the CSV and the SQLite files (default: a temporary one)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="rows per batch (default: the bulk_batch_size setting, 1000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--profile", default=None, metavar="FILE",
                        help="write a cProfile of the import to FILE and print its top entries")
    parser.add_argument(
        "--without-search-triggers", action="store_true",
        help="diagnosis only: drop the search_* triggers (migration 0003) from both files, to "
        "see what the search index costs",
    )
    parser.add_argument("--child", nargs=3, metavar=("CSV", "DB", "FOLDER"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        csv_path, database, folder = (Path(p) for p in args.child)
        child(csv_path, database, folder, args.batch_size, args.profile)
        return
    folder = args.path or Path(tempfile.mkdtemp(prefix="crm-import-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / f"contacts-{args.rows}.csv"
    if not csv_path.exists():
        print(f"generating {args.rows:,} contacts in {csv_path} ...", flush=True)
        generate(csv_path, args.rows, args.seed)
    size = csv_path.stat().st_size
    service_db, raw_db = folder / "import.sqlite3", folder / "raw.sqlite3"
    for database in (service_db, raw_db):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        migrated(database, folder)
        if args.without_search_triggers:
            drop_search_triggers(database)
    load = os.getloadavg()[0]
    print(f"file: {size / 1e6:.1f} MB, {args.rows:,} rows; load average {load:.2f}", flush=True)
    command = [sys.executable, __file__, "--child", str(csv_path), str(service_db), str(folder)]
    if args.batch_size:
        command += ["--batch-size", str(args.batch_size)]
    if args.profile:
        command += ["--profile", args.profile]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"the import failed:\n{result.stderr}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    if figures["status"] != "succeeded" or figures["created"] != args.rows:
        sys.exit(f"the import did not create every row: {figures}")
    batch_size = args.batch_size or 1000
    raw_seconds, raw_rows = raw(csv_path, raw_db, batch_size)
    service_rate = figures["rows"] / figures["seconds"]
    raw_rate = raw_rows / raw_seconds
    print(f"import (crm import contacts, end to end): {figures['seconds']:8.1f} s "
          f"{service_rate:10,.0f} rows/s  peak RSS {figures['maxrss_kib'] / 1024:,.0f} MiB "
          f"(VmHWM {(figures['vmhwm_kib'] or 0) / 1024:,.0f} MiB)")
    print(f"  of which SQL statements and their triggers {figures['sql_seconds']:.1f} s, "
          f"marshmallow load {figures['schema_seconds']:.1f} s, the rest (Python: reading, "
          f"mapping, ORM objects, audit and outbox rows, hooks) "
          f"{figures['seconds'] - figures['sql_seconds'] - figures['schema_seconds']:.1f} s")
    print(f"raw sqlite3 executemany + search index:  {raw_seconds:8.1f} s "
          f"{raw_rate:10,.0f} rows/s")
    print(f"ratio raw / import: {raw_rate / service_rate:.2f}x; "
          f"target 50,000 rows/s: {'PASS' if service_rate >= 50_000 else 'FAIL'}")
    if args.profile:
        import pstats

        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
