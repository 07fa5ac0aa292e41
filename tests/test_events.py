"""The outbox relay, deliveries, retries, dead letters, webhook signing and disabling.

These run in the test's process (the ``memory://`` queue runs a queued delivery at
once); tests/test_worker_faults.py runs real workers on the SQLite and Redis queues.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

import pytest
from sqlalchemy import func, select, update

from crm_core.db import utcnow
from crm_core.extensions import Event
from crm_core.jobs.deliveries import backoff, deliver, relay, replay, requeue_lost
from crm_core.jobs.queue import make_huey, parse_crontab
from crm_core.models import (
    AuditEntry,
    Customer,
    DeliveryAttempt,
    EventDelivery,
    OutboxEvent,
    Webhook,
)
from crm_core.services import contacts, customers
from crm_core.testing import WebhookReceiver, make_user
from crm_core.webhooks import event_body, new_secret, signature, verify_signature

SECRET = "whsec_test-secret-of-sufficient-length"


@pytest.fixture
def crm_settings_overrides() -> dict[str, Any]:
    return {"event_retry_seconds": 0.01, "event_max_attempts": 3, "webhook_timeout": 2}


def subscribe(crm: Any, url: str, patterns: list[str], secret: str = SECRET) -> int:
    with crm.unit_of_work(source="test") as uow:
        hook = Webhook(url=url, secret=secret, event_types=patterns)
        uow.session.add(hook)
        uow.session.flush()
        return hook.id


def deliveries(crm: Any, **where: Any) -> list[EventDelivery]:
    with crm.session_factory() as session:
        statement = select(EventDelivery).filter_by(**where).order_by(EventDelivery.id)
        return list(session.scalars(statement))


def make_due(crm: Any) -> list[int]:
    """Pretend every retry's wait is over; return the pending deliveries' ids."""
    with crm.unit_of_work(source="test") as uow:
        uow.session.execute(update(EventDelivery).values(next_attempt_at=utcnow()))
    return [d.id for d in deliveries(crm, status="pending")]


# -- signatures ---------------------------------------------------------------------------


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    import hashlib
    import hmac

    body = b'{"id":"e1"}'
    expected = hmac.new(b"k" * 30, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("k" * 30, 1700000000, body) == f"v1={expected}"


def test_verify_signature_refuses_tampering_other_secrets_and_old_timestamps() -> None:
    body = b'{"id":"e1"}'
    now = 1_700_000_000
    good = signature(SECRET, now, body)
    assert verify_signature(SECRET, body, str(now), good, now=now + 10)
    assert verify_signature(SECRET, body, str(now), f"v1=00, {good}", now=now)
    assert not verify_signature(SECRET, body + b" ", str(now), good, now=now)
    assert not verify_signature("whsec_other", body, str(now), good, now=now)
    assert not verify_signature(SECRET, body, str(now), good, now=now + 301)
    assert not verify_signature(SECRET, body, str(now + 1), good, now=now)
    assert not verify_signature(SECRET, body, "soon", good, now=now)
    assert not verify_signature(SECRET, body, None, good)
    assert new_secret() != new_secret() and new_secret().startswith("whsec_")


# -- relay and delivery -----------------------------------------------------------------


def test_events_reach_subscribed_webhooks_signed_once_each(crm: Any, uow: Any) -> None:
    with WebhookReceiver(SECRET) as receiver:
        subscribe(crm, receiver.url, ["customer.created"])
        subscribe(crm, receiver.url + "?other", ["contact.*"], secret=SECRET)
        with crm.unit_of_work(source="test") as unit:
            made = customers.bulk_create(unit, [{"name": f"Acme {i}"} for i in range(30)])
            contacts.create(unit, {"last_name": "Ng", "customer_id": made.records[0].id})
        assert relay(crm) == 31
        assert relay(crm) == 0
    assert receiver.bad_signatures == 0
    ids = {e.id for e in _events(crm, "customer.created")}
    contact_ids = {e.id for e in _events(crm, "contact.created")}
    # Each subscription gets what it asked for, once.
    assert sorted(receiver.receipts) == sorted([*ids, *contact_ids])
    body = receiver.store[next(iter(contact_ids))]
    assert body["type"] == "contact.created"
    assert body["data"]["changes"]["last_name"] == [None, "Ng"]
    assert {d.status for d in deliveries(crm)} == {"delivered"}
    with crm.session_factory() as session:
        to_webhooks = (
            select(func.count())
            .select_from(DeliveryAttempt)
            .join(EventDelivery)
            .where(EventDelivery.consumer.startswith("webhook:"))
        )
        assert session.scalar(to_webhooks) == 31
        assert set(session.scalars(select(OutboxEvent.status))) == {"dispatched"}


def _events(crm: Any, event_type: str) -> list[OutboxEvent]:
    with crm.session_factory() as session:
        return list(session.scalars(select(OutboxEvent).where(OutboxEvent.type == event_type)))


def test_an_event_nobody_wants_is_dispatched_without_deliveries(crm: Any) -> None:
    with crm.unit_of_work(source="test") as uow:
        customers.create(uow, {"name": "Lonely"})
    assert relay(crm) == 1
    assert deliveries(crm) == []


def test_failed_attempts_back_off_then_die_and_replay_delivers(crm: Any) -> None:
    with WebhookReceiver(SECRET, status=503) as receiver:
        hook_id = subscribe(crm, receiver.url, ["*"])
        with crm.unit_of_work(source="test") as uow:
            customers.create(uow, {"name": "Flaky"})
        relay(crm)
        [first] = deliveries(crm)
        assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 503)
        assert first.next_attempt_at > utcnow() - dt.timedelta(seconds=1)
        deliver(crm, make_due(crm))
        deliver(crm, make_due(crm))
        [dead] = deliveries(crm)
        assert (dead.status, dead.attempts) == ("dead", 3)
        assert "HTTP 503" in dead.last_error
        deliver(crm, [dead.id])  # a dead letter stays dead until replayed
        assert deliveries(crm)[0].attempts == 3

        receiver.status = 200
        admin = make_user(crm, "ops@example.com")
        with crm.unit_of_work(actor=admin, source="test") as uow:
            assert replay(uow, consumer=f"webhook:{hook_id}") == [dead.id]
        [done] = deliveries(crm)
        assert (done.status, done.attempts, done.last_status_code) == ("delivered", 1, 200)
        assert len(receiver.store) == 1
    with crm.session_factory() as session:
        attempts = session.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id)).all()
        assert [(a.ok, a.status_code) for a in attempts] == [(False, 503)] * 3 + [(True, 200)]
        assert (
            session.scalar(
                select(func.count()).where(
                    AuditEntry.entity == "delivery", AuditEntry.action == "replayed"
                )
            )
            == 1
        )


def test_replay_needs_the_permission(crm: Any) -> None:
    from crm_core.errors import PermissionDenied

    clerk = make_user(crm, "clerk@example.com", ["customer.view"])
    with pytest.raises(PermissionDenied), crm.unit_of_work(actor=clerk) as uow:
        replay(uow)


def test_backoff_doubles_with_jitter() -> None:
    for attempts, base in ((1, 10), (2, 20), (3, 40), (8, 1280)):
        assert base * 0.8 <= backoff(10, attempts) <= base * 1.2
    assert backoff(10, 40) <= 6 * 3600 * 1.2


def test_persistent_failure_disables_the_webhook_with_a_notice(crm: Any) -> None:
    crm.settings = dataclasses.replace(crm.settings, webhook_disable_after=2)
    with WebhookReceiver(SECRET, status=500) as receiver:
        hook_id = subscribe(crm, receiver.url, ["customer.*"])
        with crm.unit_of_work(source="test") as uow:
            customers.bulk_create(uow, [{"name": "A"}, {"name": "B"}])
        relay(crm)
    with crm.session_factory() as session:
        hook = session.get(Webhook, hook_id)
        assert not hook.active and hook.failure_streak == 2
        assert "2 failed attempts in a row" in hook.disabled_reason
        assert (
            session.scalar(select(func.count()).where(OutboxEvent.type == "webhook.disabled")) == 1
        )
    # Deliveries to a disabled webhook die without a request; replay after enabling.
    deliver(crm, make_due(crm))
    assert {d.status for d in deliveries(crm)} == {"dead"}
    assert all("disabled" in d.last_error for d in deliveries(crm))


def test_410_gone_disables_at_once(crm: Any) -> None:
    with WebhookReceiver(SECRET, status=410) as receiver:
        hook_id = subscribe(crm, receiver.url, ["*"])
        with crm.unit_of_work(source="test") as uow:
            customers.create(uow, {"name": "Gone"})
        relay(crm)
    with crm.session_factory() as session:
        assert not session.get(Webhook, hook_id).active
    assert deliveries(crm)[0].status == "dead"


def test_unreachable_receiver_is_a_failed_attempt(crm: Any) -> None:
    subscribe(crm, "http://127.0.0.1:9/nothing-listens-here", ["*"])
    with crm.unit_of_work(source="test") as uow:
        customers.create(uow, {"name": "Nobody home"})
    relay(crm)
    [delivery] = deliveries(crm)
    assert delivery.status == "pending" and delivery.last_status_code is None
    assert "ConnectionError" in delivery.last_error


def test_a_lost_delivery_is_queued_again_after_its_lease(crm: Any) -> None:
    crm.settings = dataclasses.replace(crm.settings, event_lease_seconds=0.05)
    with WebhookReceiver(SECRET) as receiver:
        subscribe(crm, receiver.url, ["*"])
        with crm.unit_of_work(source="test") as uow:
            customers.create(uow, {"name": "Interrupted"})
        # A worker claimed the delivery and died: running, lease running out.
        crm.queue.deliver = lambda ids, delay=None: None  # the message is lost
        relay(crm)
        with crm.unit_of_work(source="test") as uow:
            uow.session.execute(
                update(EventDelivery).values(status="running", attempts=1, lease_until=utcnow())
            )
        del crm.queue.deliver
        time.sleep(0.06)
        assert requeue_lost(crm) == 1
    [delivery] = deliveries(crm)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert len(receiver.store) == 1


def test_bad_schedules_and_queue_urls_are_refused() -> None:
    from crm_core.errors import ConfigError

    with pytest.raises(ValueError, match="five fields"):
        parse_crontab("daily")
    with pytest.raises(ValueError):
        parse_crontab("61 * * * *")
    with pytest.raises(ConfigError):
        make_huey("sqlite://")
    assert make_huey("memory://").immediate


def test_event_body_is_stable_json() -> None:
    event = Event("e1", "customer.created", "customer", "7", {"id": 7}, dt.datetime(2026, 1, 1))
    assert event_body(event) == (
        b'{"actor_id":null,"data":{"id":7},"entity":"customer","entity_id":"7",'
        b'"id":"e1","occurred_at":"2026-01-01T00:00:00","type":"customer.created"}'
    )


def test_prune_deletes_old_delivered_events_only(crm: Any) -> None:
    from crm_core.jobs.deliveries import prune

    with WebhookReceiver(SECRET) as receiver:
        subscribe(crm, receiver.url, ["customer.created"])
        with crm.unit_of_work(source="test") as uow:
            customers.bulk_create(uow, [{"name": "Old"}, {"name": "Dead"}, {"name": "New"}])
        relay(crm)
    with crm.unit_of_work(source="test") as uow:
        events = {e.entity_id: e for e in uow.session.scalars(select(OutboxEvent)).all()}
        names = dict(uow.session.execute(select(Customer.name, Customer.id)).all())
        old, dead = events[str(names["Old"])], events[str(names["Dead"])]
        long_ago = utcnow() - dt.timedelta(days=31)
        for event in (old, dead):
            event.available_at = long_ago
        uow.session.execute(
            update(EventDelivery).where(EventDelivery.event_id == dead.id).values(status="dead")
        )
    assert prune(crm) == 1
    with crm.session_factory() as session:
        left = set(session.scalars(select(OutboxEvent.id)))
        assert old.id not in left and dead.id in left and len(left) == 2
        assert session.scalar(select(func.count()).select_from(EventDelivery)) == 2
    assert "crm_core.prune_events" in crm.registry.jobs


def test_a_success_resets_the_failure_streak_without_touching_the_version(crm: Any) -> None:
    with WebhookReceiver(SECRET, status=500) as receiver:
        hook_id = subscribe(crm, receiver.url, ["customer.*"])
        with crm.unit_of_work(source="test") as uow:
            customers.create(uow, {"name": "Bumpy"})
        relay(crm)
        with crm.session_factory() as session:
            hook = session.get(Webhook, hook_id)
            assert (hook.failure_streak, hook.last_success_at, hook.version) == (1, None, 1)
        receiver.status = 200
        deliver(crm, make_due(crm))
    with crm.session_factory() as session:
        hook = session.get(Webhook, hook_id)
        assert hook.failure_streak == 0 and hook.active
        assert hook.last_success_at is not None and hook.last_failure_at is not None
        assert hook.version == 1
