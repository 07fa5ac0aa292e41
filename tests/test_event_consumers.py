"""Plugins' event consumers and jobs, run through the queue (``memory://``: at once)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, update

from crm_core.db import utcnow
from crm_core.errors import CRMError
from crm_core.extensions import Event, EventConsumer, Job
from crm_core.jobs import enqueue
from crm_core.jobs.deliveries import deliver, relay
from crm_core.models import EventDelivery, OutboxEvent
from crm_core.services import customers
from crm_core.testing import plugin_module


@pytest.fixture
def crm_settings_overrides() -> dict[str, Any]:
    return {"event_retry_seconds": 0.01}


def deliveries(crm: Any, **where: Any) -> list[EventDelivery]:
    with crm.session_factory() as session:
        statement = select(EventDelivery).filter_by(**where).order_by(EventDelivery.id)
        return list(session.scalars(statement))


def make_due(crm: Any) -> list[int]:
    with crm.unit_of_work(source="test") as uow:
        uow.session.execute(update(EventDelivery).values(next_attempt_at=utcnow()))
    return [d.id for d in deliveries(crm, status="pending")]


SEEN: list[str] = []


def remember(crm: Any, event: Event) -> None:
    if event.entity_id == "fail":
        raise RuntimeError("cannot handle this one")
    SEEN.append(event.id)


@pytest.fixture
def crm_plugin_modules() -> list[Any]:
    return [
        plugin_module(
            "auditor",
            crm_register_event_consumers=lambda: [
                EventConsumer("auditor.customers", remember, ("customer.created",), max_attempts=2)
            ],
            crm_register_jobs=lambda: [
                Job("auditor.tag", tag_customer),
                Job("auditor.nightly", tag_customer, schedule="30 2 * * *"),
            ],
        )
    ]


def tag_customer(crm: Any, customer_id: int = 0, tag: str = "nightly") -> None:
    with crm.unit_of_work(source="auditor") as uow:
        record = customers.get(uow, customer_id) if customer_id else None
        if record is not None and tag not in record.tags:
            customers.update(uow, record.id, {"tags": [*record.tags, tag]})


def test_plugin_consumers_get_their_events_and_failures_die_after_their_attempts(
    crm: Any,
) -> None:
    SEEN.clear()
    with crm.unit_of_work(source="test") as uow:
        made = customers.bulk_create(uow, [{"name": "One"}, {"name": "Two"}])
        uow.record("customer", "created", [("fail", {})])
        customers.update(uow, made.records[0].id, {"city": "Oslo"})  # not subscribed
    relay(crm)
    with crm.session_factory() as session:
        events = session.scalars(select(OutboxEvent).where(OutboxEvent.type == "customer.created"))
        created = {e.id for e in events if e.entity_id != "fail"}
    assert set(SEEN) == created and len(SEEN) == 2
    failing = deliveries(crm, status="pending")
    assert len(failing) == 1
    deliver(crm, make_due(crm))
    assert deliveries(crm, id=failing[0].id)[0].status == "dead"
    assert "RuntimeError: cannot handle this one" in deliveries(crm, status="dead")[0].last_error


@pytest.mark.plugins()  # only the auditor's schedules (installed plugins have their own)
def test_jobs_run_through_the_queue_and_schedules_are_registered(crm: Any) -> None:
    with crm.unit_of_work(source="test") as uow:
        record = customers.create(uow, {"name": "Tag me"})
    enqueue(crm, "auditor.tag", customer_id=record.id, tag="vip")
    with crm.unit_of_work(source="test") as uow:
        assert customers.get(uow, record.id).tags == ["vip"]
    huey = crm.queue.huey
    due = {task.name for task in huey.read_periodic(dt.datetime(2026, 11, 24, 2, 30))}
    assert due == {"job:auditor.nightly"}
    assert huey.read_periodic(dt.datetime(2026, 11, 24, 2, 31)) == []
    with pytest.raises(CRMError, match="no job 'nope'"):
        enqueue(crm, "nope")
