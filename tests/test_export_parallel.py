"""Parallel exports: forked workers render ranges of ids, the file is the one-process file.

On a committed database of each engine (workers open connections of their own):
every format, a user's visibility, archived records and the Excel BOM give the same
bytes with several processes as with one; ``crm export --jobs`` does the same; a worker's
error reaches the caller and leaves no file; PostgreSQL's workers share the parent's
snapshot, SQLite's read each range as it is then.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from crm_core import migrate
from crm_core.cli import cli
from crm_core.exports import atomic_file, parallel, prepare_export
from crm_core.exports.parallel import can_run_parallel, id_ranges, write_parallel
from crm_core.exports.runner import Export
from crm_core.models import Contact
from crm_core.runtime import CRM
from crm_core.services import contacts, customers
from crm_core.testing import crm_test_settings, make_user

CONTACTS = 240


@pytest.fixture
def committed(fresh_database_url: str, tmp_path: Path) -> Iterator[CRM]:
    """A CRM on a fresh, migrated database whose records are committed (workers see them)."""
    runtime = CRM(crm_test_settings(fresh_database_url, tmp_path / "instance", plugins=[]))
    migrate.upgrade(runtime)
    seller = make_user(runtime, "seller@parallel.example", ["contact.view"], visibility="own")
    with runtime.unit_of_work(source="test") as uow:
        own = customers.create(uow, {"name": "Seller's Co", "owner_id": seller.id})
        other = customers.create(uow, {"name": 'Other, "Quoted" Co'})
        rows = [
            {
                "first_name": f"Zoë {number}",
                "last_name": "O'Brien, Jr." if number % 7 == 0 else f"Müller {number}",
                "customer_id": (own if number % 3 == 0 else other).id,
                "job_title": "Buyer\nSouth" if number % 11 == 0 else None,
                "emails": [{"label": "work", "email": f"z{number}@parallel.example"}]
                + ([{"label": "home", "email": f"z{number}@home.example"}] if number % 2 else []),
                "phones": [{"label": "work", "number": f"+49 30 {1000000 + number}"}],
            }
            for number in range(CONTACTS)
        ]
        created = contacts.bulk_create(uow, rows)
        assert created.ok
        contacts.archive(uow, created.records[5].id)
    runtime.seller = seller  # type: ignore[attr-defined]
    yield runtime
    runtime.dispose()


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges of 25 ids, so that a few hundred contacts make ten of them."""
    monkeypatch.setattr(parallel, "MIN_RANGE", 25)
    monkeypatch.setattr(parallel, "MAX_RANGE", 25)


def _bytes(export: Export, tmp_path: Path, jobs: int) -> tuple[int, bytes]:
    path = tmp_path / f"export-{jobs}"
    with atomic_file(path) as out:
        rows = write_parallel(export, out, jobs)
    return rows, path.read_bytes()


def test_ranges_cover_the_ids_in_order():
    assert id_ranges(None, None, 2) == []
    assert id_ranges(1, 5, 2) == [(1, 5)]
    ranges = id_ranges(1, 1_000_000, 2)
    assert ranges[0] == (1, 20_000) and ranges[-1] == (980_001, 1_000_000)
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))
    assert len(id_ranges(10, 100_009, 4)) == 10  # not below MIN_RANGE records a range


@pytest.mark.parametrize(
    ("format", "options"),
    [
        ("csv", {}),
        ("csv", {"excel": True}),
        ("csv", {"include_archived": True}),
        ("jsonl", {}),
        ("vcf", {}),
    ],
)
def test_several_processes_write_the_one_process_file(
    committed, small_ranges, tmp_path, format, options
):
    assert can_run_parallel(prepare_export(committed, "contacts", format))
    one = _bytes(prepare_export(committed, "contacts", format, **options), tmp_path, 1)
    three = _bytes(prepare_export(committed, "contacts", format, **options), tmp_path, 3)
    expected = CONTACTS if options.get("include_archived") else CONTACTS - 1
    assert one[0] == three[0] == expected
    assert three[1] == one[1]
    assert three[1].startswith(b"\xef\xbb\xbf") is bool(options.get("excel"))


def test_each_worker_keeps_to_what_the_user_may_see(committed, small_ranges, tmp_path):
    export = prepare_export(committed, "contacts", "csv", actor=committed.seller)
    rows, text = _bytes(export, tmp_path, 2)
    assert rows == CONTACTS // 3  # the seller's customer has every third contact
    assert text.count(b"\r\n") == rows + 1
    assert text == _bytes(
        prepare_export(committed, "contacts", "csv", actor=committed.seller), tmp_path, 1
    )[1]


def test_crm_export_jobs_writes_the_same_file(committed, small_ranges, tmp_path):
    env = {
        "CRM_DATABASE_URL": committed.settings.database_url,
        "CRM_INSTANCE_PATH": str(tmp_path / "instance"),
        "CRM_SECRET_KEY": "cli-test-secret-key-0123456789",
        "CRM_PLUGINS": ",",  # none, as the database was migrated
    }
    runner = CliRunner()
    files = {}
    for jobs in ("1", "2"):
        path = tmp_path / f"contacts-{jobs}.csv"
        result = runner.invoke(cli, ["export", "contacts", "-o", str(path), "--jobs", jobs],
                               env=env)
        assert result.exit_code == 0, result.output
        assert f"exported {CONTACTS - 1} contacts as csv to {path}" in result.output
        files[jobs] = path.read_bytes()
    assert files["1"] == files["2"]
    refused = runner.invoke(cli, ["export", "--all", "-o", str(tmp_path / "d"), "--jobs", "2"],
                            env=env)
    assert refused.exit_code == 2 and "--all dumps every row" in refused.output


def test_a_failing_worker_fails_the_export_and_leaves_no_file(
    committed, small_ranges, tmp_path, monkeypatch
):
    chunks = Export.chunks

    def failing(self: Export, connection: Any, *, ids: Any = None, header: bool = True) -> Any:
        if ids is not None and ids[0] > 100:
            raise RuntimeError(f"the disk is gone at {ids}")
        return chunks(self, connection, ids=ids, header=header)

    monkeypatch.setattr(Export, "chunks", failing)  # inherited by the forked workers
    path = tmp_path / "contacts.csv"
    with pytest.raises(RuntimeError, match="the disk is gone"), atomic_file(path) as out:
        write_parallel(prepare_export(committed, "contacts", "csv"), out, 2)
    assert not path.exists() and list(tmp_path.glob(".contacts.csv*")) == []


def test_ranges_read_the_snapshot_of_the_database_they_promise(
    committed, small_ranges, tmp_path, monkeypatch
):
    """A change committed after the export started: PostgreSQL's workers share the start's
    snapshot and miss it; SQLite's ranges, each read when its turn comes, show it."""
    planned = parallel.id_ranges

    def plan_then_change(low: int | None, high: int | None, jobs: int) -> Any:
        with committed.engine.begin() as connection:
            connection.execute(update(Contact).values(job_title="Changed meanwhile"))
        return planned(low, high, jobs)

    monkeypatch.setattr(parallel, "id_ranges", plan_then_change)
    rows, text = _bytes(prepare_export(committed, "contacts", "csv"), tmp_path, 2)
    assert rows == CONTACTS - 1
    changed = text.count(b"Changed meanwhile")
    if committed.engine.dialect.name == "postgresql":
        assert changed == 0
    else:
        assert changed == CONTACTS - 1
