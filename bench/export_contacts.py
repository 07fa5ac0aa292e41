"""Export contacts to CSV: rows per second and peak memory, against what raw sqlite3 manages.

Builds (once, then reuses) a SQLite file with ``--rows`` contacts, their emails and
phone numbers, then times ``crm export contacts -o FILE`` through the function the
command uses (:func:`crm_core.exports.parallel.write_parallel`), with one process and
with as many as the command starts by default (the CPU count, at most 4), in a child
process of its own so that its peak RSS is the export's (its workers' apart; CPU time
adds theirs). Beside it, as a ceiling, the same file read with
plain ``sqlite3`` and written with ``csv.writer``: the contact rows alone, and with the
children fetched per batch. Target: 200,000 rows/s, flat memory::

    .venv/bin/python bench/export_contacts.py --rows 100000
    .venv/bin/python bench/export_contacts.py                 # 1,000,000 contacts
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

FOLDER = Path("/tmp/crm-bench")
BATCH = 50_000
FIRST = ["Anna", "Ben", "Chloé", "David", "Emma", "Felix", "Greta", "Hugo", "Ida", "Jonas",
         "Kai", "Lena", "Mia", "Noah", "Olga", "Paul", "Quinn", "Rosa", "Sven", "Zoë"]
LAST = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
        "Schulz", "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Neumann", "O'Brien"]
TITLES = ["Buyer", "CEO", "Head of Purchasing", "Office manager", "CTO", None, None]
CONTACT_COLUMNS = (
    "id, customer_id, first_name, last_name, job_title, external_id, owner_id, consent_email, "
    "consent_email_at, consent_phone, consent_phone_at, attributes, archived, merged_into_id, "
    "version, created_at, updated_at"
)


# -- the data ------------------------------------------------------------------------------------


def build(path: Path, rows: int, seed: int = 11) -> Path:
    """Make (or reuse) a migrated SQLite file with ``rows`` contacts."""
    if _count(path) == rows:
        return path
    from crm_core import CRM, migrate
    from crm_core.config import load_settings

    print(f"building {path} ({rows:,} contacts; once, then reused)...", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    settings = {"database_url": f"sqlite:///{path}", "instance_path": str(path.parent),
                "plugins": []}
    crm = CRM(load_settings(settings, environ={}), discover_plugins=False)
    migrate.upgrade(crm)
    crm.dispose()
    started = time.perf_counter()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-400000")
    # The search triggers would rebuild a contact's search document for the contact and
    # for each email and phone: insert without them, then index everything at once.
    triggers = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'search_%' "
        "AND tbl_name IN ('contact', 'contact_email', 'contact_phone')"
    ).fetchall()
    for name, _sql in triggers:
        db.execute(f"DROP TRIGGER {name}")
    rng = random.Random(seed)
    stamp = "2026-11-01 09:30:00.000000"
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO user (id, email, name, active, failed_logins, created_at, updated_at) "
        "VALUES (?, ?, ?, 1, 0, ?, ?)",
        [(i, f"seller{i}@example.com", f"Seller {i}", stamp, stamp) for i in range(1, 51)],
    )
    customers = max(1, rows // 10)
    db.executemany(
        "INSERT INTO customer (id, kind, name, country, lifecycle_stage, owner_id, attributes, "
        "archived, created_at, updated_at, version) "
        "VALUES (?, 'company', ?, 'DE', 'customer', ?, '{}', 0, ?, ?, 1)",
        [(i, f"Company {i} GmbH", i % 50 + 1, stamp, stamp) for i in range(1, customers + 1)],
    )
    for batch in _batches(_contacts(rng, rows, customers), BATCH):
        contacts = [contact for contact, _emails, _phones in batch]
        db.executemany(f"INSERT INTO contact ({CONTACT_COLUMNS}) VALUES ({_marks(17)})", contacts)
        db.executemany(
            "INSERT INTO contact_email (contact_id, label, email, position) VALUES (?, ?, ?, ?)",
            [email for _contact, emails, _phones in batch for email in emails],
        )
        db.executemany(
            "INSERT INTO contact_phone (contact_id, label, number, e164, position) "
            "VALUES (?, ?, ?, ?, ?)",
            [phone for _contact, _emails, phones in batch for phone in phones],
        )
    db.execute("COMMIT")
    print(f"  rows inserted in {time.perf_counter() - started:.0f} s", flush=True)
    for _name, sql in triggers:
        db.execute(sql)
    search = _search_migration()
    db.execute("DELETE FROM search_contact")
    db.execute(search._contact_rows("SELECT id FROM contact"))
    if search.SQLITE_TRIGRAM:
        db.execute("DELETE FROM search_contact_trgm")
        db.execute(
            "INSERT INTO search_contact_trgm (rowid, name) "
            "SELECT id, trim(first_name || ' ' || last_name) FROM contact"
        )
    db.execute("ANALYZE")
    db.close()
    print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def _contacts(rng: random.Random, rows: int, customers: int) -> Iterator[tuple]:
    base = 1_700_000_000
    for ident in range(1, rows + 1):
        created = _stamp(base + rng.randrange(60_000_000), rng.randrange(1_000_000))
        consent = rng.random() < 0.4
        first, last = rng.choice(FIRST), rng.choice(LAST)
        contact = (
            ident, rng.randint(1, customers), first, last, rng.choice(TITLES),
            f"ERP-{ident}" if ident % 4 == 0 else None, rng.randint(1, 50),
            int(consent), created if consent else None, 0, None, "{}", 0, None, 1,
            created, created,
        )
        local = f"{first}.{last}{ident}".lower().replace("'", "")
        emails = [(ident, "work", f"{local}@company{ident % 997}.example", 0)]
        if rng.random() < 0.25:
            emails.append((ident, "home", f"{local}@mail.example", 1))
        phones = []
        if rng.random() < 0.85:
            number = f"30{ident:09d}"
            phones.append((ident, "work", f"+49 {number[:2]} {number[2:]}", f"+49{number}", 0))
            if rng.random() < 0.15:
                phones.append((ident, "mobile", f"+49 151 {ident:08d}", f"+49151{ident:08d}", 1))
        yield contact, emails, phones


def _stamp(seconds: int, micro: int) -> str:
    moment = time.gmtime(seconds)
    return time.strftime("%Y-%m-%d %H:%M:%S", moment) + f".{micro:06d}"


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _batches(rows: Iterator[tuple], size: int) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _search_migration():
    path = Path(__file__).resolve().parent.parent / "crm_core/migrations/versions/0003_search.py"
    spec = importlib.util.spec_from_file_location("crm_search_0003", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _count(path: Path) -> int | None:
    if not path.is_file():
        return None
    try:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT count(*) FROM contact").fetchone()[0]
    except sqlite3.Error:
        return None


# -- the measurements ------------------------------------------------------------------------------


def child_export(database: Path, output: Path, jobs: int) -> dict:
    """In the child process: the export as ``crm export contacts -o FILE --jobs N`` makes it."""
    from crm_core import CRM
    from crm_core.config import load_settings
    from crm_core.exports import atomic_file, prepare_export
    from crm_core.exports.parallel import write_parallel

    settings = {"database_url": f"sqlite:///{database}", "instance_path": str(database.parent),
                "plugins": []}
    crm = CRM(load_settings(settings, environ={}), discover_plugins=False)
    before = _vm("VmRSS")
    started, cpu = time.perf_counter(), time.process_time()
    with atomic_file(output) as out:
        rows = write_parallel(prepare_export(crm, "contacts", "csv"), out, jobs)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)  # the forked workers, if any
    crm.dispose()
    return {
        "rows": rows, "seconds": seconds, "cpu": cpu + workers.ru_utime + workers.ru_stime,
        "rss_before_kb": before, "hwm_kb": _vm("VmHWM"), "worker_maxrss_kb": workers.ru_maxrss,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "bytes": output.stat().st_size,
    }


def child_ceiling(database: Path, output: Path, children: bool) -> dict:
    """In the child process: plain sqlite3 and csv.writer, no crm_core at all."""
    db = sqlite3.connect(database)
    started, cpu = time.perf_counter(), time.process_time()
    rows = 0
    with open(output, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        cursor = db.execute(f"SELECT {CONTACT_COLUMNS} FROM contact ORDER BY id")
        while batch := cursor.fetchmany(5000):
            if children:
                low, high = batch[0][0], batch[-1][0]
                found: dict[int, list[str]] = {}
                for table, value in (("contact_email", "email"), ("contact_phone", "number")):
                    for key, item in db.execute(
                        f"SELECT contact_id, {value} FROM {table} WHERE contact_id BETWEEN ? "
                        "AND ? ORDER BY contact_id, position", (low, high)
                    ):
                        found.setdefault(key, []).append(item)
                batch = [(*row, "; ".join(found.get(row[0], ()))) for row in batch]
            writer.writerows(batch)
            rows += len(batch)
    return {"rows": rows, "seconds": time.perf_counter() - started,
            "cpu": time.process_time() - cpu, "hwm_kb": _vm("VmHWM")}


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _run_child(*args: str) -> dict:
    found = subprocess.run(
        [sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True
    )
    return json.loads(found.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    """Build the file if needed, then time the export and the ceilings ``--repeat`` times."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument("--folder", type=Path, default=FOLDER)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child:
        kind, database, output = options.child
        if kind.startswith("export"):
            jobs = 1 if kind == "export" else min(os.cpu_count() or 1, 4)
            result = child_export(Path(database), Path(output), jobs)
        else:
            result = child_ceiling(Path(database), Path(output), kind == "ceiling-children")
        print(json.dumps(result))
        return
    database = build(options.folder / f"contacts-{options.rows}.sqlite3", options.rows)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(dir=options.folder) as scratch:
        output = Path(scratch) / "contacts.csv"
        results: dict[str, list[dict]] = {
            "ceiling": [], "ceiling-children": [], "export": [], "export-parallel": []
        }
        for _ in range(options.repeat):
            for kind in results:  # interleaved, so that a busy moment hits them alike
                results[kind].append(_run_child(kind, str(database), str(output)))
        print(f"{options.rows:,} contacts, best of {options.repeat} (wall clock; CPU time)")
        for kind, label in (
            ("ceiling", "sqlite3 + csv.writer, contact rows only"),
            ("ceiling-children", "sqlite3 + csv.writer, with emails and phones"),
            ("export", "crm export contacts --jobs 1"),
            ("export-parallel", f"crm export contacts (--jobs {min(os.cpu_count() or 1, 4)})"),
        ):
            best = min(results[kind], key=lambda r: r["seconds"])
            rate = best["rows"] / best["seconds"]
            print(f"  {label:46} {rate:>10,.0f} rows/s  {best['seconds']:6.2f} s "
                  f"(CPU {best['rows'] / best['cpu']:,.0f} rows/s)  peak RSS "
                  f"{best['hwm_kb'] / 1024:6.1f} MB")
        export = min(results["export-parallel"], key=lambda r: r["seconds"])
        print(f"  export: {export['bytes'] / 1e6:,.1f} MB written; RSS "
              f"{export['rss_before_kb'] / 1024:.1f} MB before the export, peak "
              f"{export['hwm_kb'] / 1024:.1f} MB (ru_maxrss {export['maxrss_kb'] / 1024:.1f} MB); "
              f"largest worker's peak RSS {export['worker_maxrss_kb'] / 1024:.1f} MB")
        verdict = "PASS" if export["rows"] / export["seconds"] >= 200_000 else "FAIL"
        print(f"  target >= 200,000 rows/s: {verdict}")


if __name__ == "__main__":
    main()
