"""Concurrent writers on one SQLite file: units of work queue for the write lock, never fail.

Every test here makes its own SQLite file (migrated to every head) and several CRM
runtimes on it, each with its own engine, as gunicorn's workers have: what matters is
SQLite's locking between connections, so these tests do not use the shared, rolled-back
test database and do not run on PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import OperationalError

from crm_core import CRM, migrate
from crm_core.db import create_db_engine
from crm_core.models import AuditEntry, Contact, ContactPhone, Customer, OutboxEvent
from crm_core.services import contacts, customers
from crm_core.testing import crm_test_settings

WORKERS = 3
WRITES_PER_WORKER = 15
#: How long each unit of work waits between its read and its write, so that the others
#: write meanwhile: without BEGIN IMMEDIATE, that is what makes SQLite refuse.
PAUSE = 0.002


@pytest.fixture
def database(tmp_path: Path) -> str:
    """A migrated SQLite file with one customer (id 1)."""
    url = f"sqlite:///{tmp_path / 'concurrent.sqlite3'}"
    crm = runtime(url, tmp_path)
    try:
        migrate.upgrade(crm)
        with crm.unit_of_work(source="test") as uow:
            customers.create(uow, {"name": "Nakatomi Trading", "country": "DE"})
    finally:
        crm.dispose()
    return url


@pytest.fixture
def runtimes(database: str, tmp_path: Path) -> Iterator[list[CRM]]:
    """One CRM (with its own engine and connection pool) per concurrent worker."""
    made = [runtime(database, tmp_path) for _ in range(WORKERS)]
    yield made
    for crm in made:
        crm.dispose()


def runtime(url: str, tmp_path: Path) -> CRM:
    return CRM(crm_test_settings(url, tmp_path / "instance", plugins=[]), discover_plugins=False)


def count(crm: CRM, model: type) -> int:
    with crm.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_a_deferred_transaction_that_read_cannot_write_after_another_wrote(runtimes):
    """Why units of work begin with BEGIN IMMEDIATE: the failure they avoid, on its own."""
    reader, writer = runtimes[:2]
    with reader.session_factory() as session, session.begin():
        session.scalar(select(func.count()).select_from(Customer))  # deferred BEGIN: a snapshot
        with writer.unit_of_work(source="test") as uow:
            customers.create(uow, {"name": "Written meanwhile"})
        with pytest.raises(OperationalError, match="database is locked"):
            session.execute(insert(Customer), {"name": "Too late"})


def test_units_of_work_that_read_then_write_all_succeed(runtimes):
    failures: list[BaseException] = []
    start = threading.Barrier(len(runtimes))

    def work(crm: CRM, number: int) -> None:
        start.wait()
        for n in range(WRITES_PER_WORKER):
            try:
                with crm.unit_of_work(source="test") as uow:
                    uow.session.scalar(select(func.count()).select_from(Contact))
                    time.sleep(PAUSE)
                    contacts.create(uow, {
                        "customer_id": 1, "first_name": f"Worker {number}", "last_name": str(n),
                        "phones": [{"label": "work", "number": "030 1234567"}],
                    })
            except Exception as exc:  # reported by the test, not lost in the thread
                failures.append(exc)

    threads = [threading.Thread(target=work, args=(crm, n)) for n, crm in enumerate(runtimes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures[:3]
    expected = WORKERS * WRITES_PER_WORKER
    crm = runtimes[0]
    assert count(crm, Contact) == expected
    with crm.session_factory() as session:
        audited = session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.entity == "contact")
        )
        events = session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.entity == "contact")
        )
        numbers = set(session.scalars(select(ContactPhone.e164)))
    assert (audited, events) == (expected, expected)
    assert numbers == {"+49301234567"}  # read with the customer's country


@pytest.fixture
def impatient(database: str, tmp_path: Path) -> Iterator[CRM]:
    """A CRM on the same file that waits at most 0.3 s for a lock (busy timeout)."""
    settings = crm_test_settings(database, tmp_path / "instance", plugins=[])
    crm = CRM(settings, discover_plugins=False,
              engine=create_db_engine(settings, connect_args={"timeout": 0.3}))
    yield crm
    crm.dispose()


def test_a_writer_waits_for_the_write_lock_up_to_the_busy_timeout(runtimes, impatient):
    holder = runtimes[0]
    with holder.unit_of_work(source="test") as uow:
        customers.create(uow, {"name": "Holds the lock"})
        began = time.monotonic()
        with (pytest.raises(OperationalError, match="database is locked"),
              impatient.unit_of_work(source="test") as other):
            customers.create(other, {"name": "Gives up"})
        assert 0.25 < time.monotonic() - began < 5

    def commit_soon() -> None:
        with holder.unit_of_work(source="test") as uow:
            customers.create(uow, {"name": "Briefly"})
            time.sleep(0.1)

    thread = threading.Thread(target=commit_soon)
    thread.start()
    time.sleep(0.02)
    with impatient.unit_of_work(source="test") as uow:  # waits ~0.08 s, then writes
        customers.create(uow, {"name": "Waited"})
    thread.join()
    assert count(holder, Customer) == 4


def test_a_unit_of_work_that_only_reads_takes_no_lock(runtimes, impatient):
    with runtimes[0].unit_of_work(source="test", write=False) as uow:
        assert customers.get(uow, 1).name == "Nakatomi Trading"
        with impatient.unit_of_work(source="test") as other:  # no wait for the reader
            customers.create(other, {"name": "Meanwhile"})
    with runtimes[0].unit_of_work(source="test") as uow:
        assert customers.get(uow, 1).name == "Nakatomi Trading"
        with (pytest.raises(OperationalError, match="database is locked"),
              impatient.unit_of_work(source="test") as other):
            customers.create(other, {"name": "Waits for the writer, in vain"})


def test_reads_outside_units_of_work_do_not_wait_for_a_writer(runtimes):
    writer, reader = runtimes[:2]
    with writer.unit_of_work(source="test") as uow:
        customers.create(uow, {"name": "Not committed yet"})  # holds the write lock
        began = time.monotonic()
        assert count(reader, Customer) == 1
        assert time.monotonic() - began < 1
    assert count(reader, Customer) == 2


def test_savepoints_work_inside_a_unit_of_work(runtimes):
    crm = runtimes[0]
    with crm.unit_of_work(source="test") as uow:
        customers.create(uow, {"name": "Kept"})
        nested = uow.session.begin_nested()
        customers.create(uow, {"name": "Rolled back"})
        nested.rollback()
        customers.create(uow, {"name": "Kept too"})
    with crm.session_factory() as session:
        names = set(session.scalars(select(Customer.name)))
    assert names == {"Nakatomi Trading", "Kept", "Kept too"}
