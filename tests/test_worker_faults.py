"""Real ``crm worker`` processes on the SQLite and the Redis queue, killed mid-delivery.

Each test commits events to a database of the engine under test, starts ``crm
worker`` as a child process, SIGKILLs it while it is delivering to a real HTTP
receiver on 127.0.0.1, starts it again, and checks that every event reached the
receiver's idempotent store exactly once and that every delivery ended delivered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_core import CRM, migrate
from crm_core.models import EventDelivery, OutboxEvent, Webhook
from crm_core.services import customers
from crm_core.testing import WebhookReceiver, crm_test_settings

SECRET = "whsec_fault-test-secret-0123456789"
EVENTS = 300
REDIS_URL = os.environ.get("CRM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CRM_SCRIPT = Path(sys.executable).with_name("crm")


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A queue of each backend: a SQLite file, or a Redis queue of this test's own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'queue.sqlite3'}"
        return
    url = f"{REDIS_URL}?queue=crm-test-{uuid.uuid4().hex[:10]}"
    from crm_core.jobs.queue import make_huey

    huey = make_huey(url)
    huey.storage.conn.ping()  # Redis must be up: CI starts it, never skip silently
    yield url
    huey.flush()


@pytest.fixture
def committed_crm(fresh_database_url: str, tmp_path: Path, queue_url: str) -> Iterator[CRM]:
    """A CRM on a migrated database of its own, whose writes really commit."""
    settings = crm_test_settings(
        fresh_database_url,
        tmp_path / "instance",
        queue_url=queue_url,
        plugins=[],
        event_lease_seconds=2,
        webhook_timeout=1,
    )
    crm = CRM(settings)
    migrate.upgrade(crm)
    yield crm
    crm.dispose()


def start_worker(crm: CRM, log: Path) -> subprocess.Popen[bytes]:
    """``crm worker`` in a child process on ``crm``'s database and queue."""
    settings = crm.settings
    env = {
        **os.environ,
        "CRM_DATABASE_URL": settings.database_url,
        "CRM_INSTANCE_PATH": str(settings.instance_path),
        "CRM_SECRET_KEY": settings.secret_key,
        "CRM_QUEUE_URL": settings.queue_url,
        "CRM_PLUGINS": ",",
        "CRM_EVENT_LEASE_SECONDS": str(settings.event_lease_seconds),
        "CRM_WEBHOOK_TIMEOUT": str(settings.webhook_timeout),
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [str(CRM_SCRIPT), "worker", "--threads", "4", "--relay-interval", "0.05"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def delivery_counts(crm: CRM) -> dict[str, int]:
    with crm.session_factory() as session:
        rows = session.execute(
            select(EventDelivery.status, func.count()).group_by(EventDelivery.status)
        )
        return dict(rows.all())


def test_sigkilled_worker_loses_and_duplicates_nothing(committed_crm: CRM, tmp_path: Path) -> None:
    crm = committed_crm
    log = tmp_path / "worker.log"
    with WebhookReceiver(SECRET, delay=0.01) as receiver:
        with crm.unit_of_work(source="test") as uow:
            uow.session.add(Webhook(url=receiver.url, secret=SECRET, event_types=["customer.*"]))
        with crm.unit_of_work(source="test") as uow:
            customers.bulk_create(uow, [{"name": f"Customer {i}"} for i in range(EVENTS)])

        worker = start_worker(crm, log)
        try:
            wait_for(lambda: len(receiver.receipts) >= EVENTS // 4, 60, "the first deliveries")
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
            killed_at = len(receiver.receipts)
            assert killed_at < EVENTS, "the worker finished before it could be killed"
            assert delivery_counts(crm).get("delivered", 0) < EVENTS

            worker = start_worker(crm, log)
            wait_for(
                lambda: delivery_counts(crm) == {"delivered": EVENTS}, 90, "every delivery"
            )
        finally:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(timeout=20)
        assert worker.returncode == 0 or worker.returncode == -signal.SIGTERM, log.read_text()

    with crm.session_factory() as session:
        event_ids = set(session.scalars(select(OutboxEvent.id)))
        assert set(session.scalars(select(OutboxEvent.status))) == {"dispatched"}
    assert len(event_ids) == EVENTS
    # Every event is in the receiver's idempotent store, once; a delivery cut by the kill
    # may have reached the receiver twice (at least once), never fewer than once.
    assert set(receiver.store) == event_ids
    assert len(receiver.receipts) >= EVENTS
    assert receiver.bad_signatures == 0


def test_sigterm_lets_the_worker_finish_its_tasks(committed_crm: CRM, tmp_path: Path) -> None:
    crm = committed_crm
    log = tmp_path / "worker.log"
    with WebhookReceiver(SECRET) as receiver:
        with crm.unit_of_work(source="test") as uow:
            uow.session.add(Webhook(url=receiver.url, secret=SECRET, event_types=["*"]))
            customers.create(uow, {"name": "Graceful"})
        worker = start_worker(crm, log)
        wait_for(lambda: delivery_counts(crm) == {"delivered": 1}, 60, "the delivery")
        os.killpg(worker.pid, signal.SIGTERM)
        assert worker.wait(timeout=30) in (0, -signal.SIGTERM), log.read_text()
    assert len(receiver.store) == 1
