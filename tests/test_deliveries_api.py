"""Outbox events and deliveries through ``/api/v1/events`` and ``/api/v1/deliveries``:
lists and filters, attempts, and the replay of dead letters (one, or all of a consumer's)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from crm_core.db import utcnow
from crm_core.models import AuditEntry, DeliveryAttempt, EventDelivery, OutboxEvent
from crm_core.services import customers
from crm_core.testing import WebhookReceiver

pytestmark = pytest.mark.plugins()

PROBLEM = "application/problem+json"


@pytest.fixture
def crm_settings_overrides(tmp_path: Any) -> dict[str, Any]:
    """A real queue no worker consumes: replayed deliveries stay as the replay left them."""
    return {"queue_url": f"sqlite:///{tmp_path / 'queue.sqlite3'}"}


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return response.get_json(force=True)


def add_event(
    crm: Any,
    *,
    type: str = "contact.created",
    entity_id: str = "7",
    occurred_at: dt.datetime | None = None,
    deliveries: tuple[tuple[str, str], ...] = (("webhook:1", "dead"),),
) -> tuple[str, list[int]]:
    """An outbox event (dispatched) and its deliveries ``(consumer, status)``, made directly."""
    with crm.unit_of_work(source="test") as uow:
        event = OutboxEvent(
            type=type,
            entity=type.split(".")[0],
            entity_id=entity_id,
            payload={"id": int(entity_id), "changes": {}},
            status="dispatched",
            occurred_at=occurred_at or utcnow(),
        )
        uow.session.add(event)
        uow.session.flush()
        ids = []
        for consumer, status in deliveries:
            delivery = EventDelivery(
                event_id=event.id,
                consumer=consumer,
                status=status,
                attempts=3 if status == "dead" else 1,
                last_status_code=500 if status == "dead" else 200,
                last_error="HTTP 500: boom" if status == "dead" else None,
                delivered_at=utcnow() if status == "delivered" else None,
            )
            uow.session.add(delivery)
            uow.session.flush()
            for attempt in range(delivery.attempts):
                uow.session.add(
                    DeliveryAttempt(
                        delivery_id=delivery.id,
                        attempted_at=utcnow() + dt.timedelta(seconds=attempt),
                        duration_ms=12.5,
                        ok=status == "delivered",
                        status_code=delivery.last_status_code,
                        error=delivery.last_error,
                    )
                )
            ids.append(delivery.id)
        return event.id, ids


def stored(crm: Any, delivery_id: int) -> EventDelivery:
    with crm.session_factory() as session:
        found = session.get(EventDelivery, delivery_id)
        assert found is not None
        return found


# -- deliveries -----------------------------------------------------------------------------


def test_deliveries_list_newest_first_with_filters_and_pages(api, crm):
    _e1, (dead_1, ok_1) = add_event(
        crm, deliveries=(("webhook:1", "dead"), ("crm_sales.sync", "delivered"))
    )
    _e2, (dead_2, pending_2) = add_event(
        crm, type="customer.updated", deliveries=(("webhook:1", "dead"), ("webhook:2", "pending"))
    )
    everything = api.collect("/deliveries", query_string={"limit": 1})
    assert [d["id"] for d in everything] == [pending_2, dead_2, ok_1, dead_1]
    first = api.get("/deliveries", query_string={"limit": 3}).get_json()
    assert "before_id=" in first["next"]
    dead = api.get("/deliveries", query_string={"status": "dead"}).get_json()["data"]
    assert [d["id"] for d in dead] == [dead_2, dead_1]
    assert dead[0]["event_type"] == "customer.updated" and dead[0]["webhook_id"] == 1
    assert dead[0]["links"]["webhook"] == "/api/v1/webhooks/1"
    theirs = api.get("/deliveries", query_string={"consumer": "webhook:1"}).get_json()["data"]
    assert [d["id"] for d in theirs] == [dead_2, dead_1]
    plugin = api.get("/deliveries", query_string={"consumer": "crm_sales.sync"}).get_json()
    assert plugin["data"][0]["webhook_id"] is None and "webhook" not in plugin["data"][0]["links"]
    both = api.get("/deliveries?consumer=webhook:2&status=dead").get_json()["data"]
    assert both == []
    assert problem(api.get("/deliveries?status=lost"), 400)["errors"] == {
        "status": ["Use one of: pending, running, delivered, dead."]
    }
    problem(api.get("/deliveries?before_id=x"), 400)
    problem(api.get("/deliveries?consumer=a%00b"), 400)


def test_a_delivery_shows_its_attempts(api, crm):
    event_id, (ident,) = add_event(crm)
    body = api.get(f"/deliveries/{ident}").get_json()
    assert body["status"] == "dead" and body["attempts"] == 3 and body["event_id"] == event_id
    assert body["last_error"] == "HTTP 500: boom" and body["last_status_code"] == 500
    log = body["attempt_log"]
    assert len(log) == 3
    assert [a["attempted_at"] for a in log] == sorted(
        (a["attempted_at"] for a in log), reverse=True
    )
    assert log[0]["ok"] is False and log[0]["duration_ms"] == 12.5
    assert log[0]["status_code"] == 500 and log[0]["error"] == "HTTP 500: boom"
    assert body["links"]["event"] == f"/api/v1/events/{event_id}"
    for missing in ("999999", "0", "x", "99999999999999999999"):
        problem(api.get(f"/deliveries/{missing}"), 404)


def test_replaying_a_dead_letter_makes_it_pending_and_is_audited(api, crm):
    _event, (ident, delivered) = add_event(
        crm, deliveries=(("webhook:1", "dead"), ("webhook:2", "delivered"))
    )
    response = api.post(f"/deliveries/{ident}/replay")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == ident and body["status"] == "pending" and body["attempts"] == 0
    row = stored(crm, ident)
    assert (row.status, row.attempts) == ("pending", 0)
    assert row.next_attempt_at <= utcnow() and row.lease_until > utcnow()
    assert crm.queue.pending_messages() == 1  # queued for a worker
    with crm.session_factory() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.entity == "delivery")).all()
        assert [(e.action, e.entity_id, e.source) for e in entries] == [
            ("replayed", str(ident), "api")
        ]
        assert session.scalar(select(OutboxEvent.id).where(OutboxEvent.type == "delivery.replayed"))
    # Only dead letters: a pending (just replayed) or delivered one is a 409.
    for busy in (ident, delivered):
        body = problem(api.post(f"/deliveries/{busy}/replay"), 409)
        assert body["type"].endswith(":conflict") and "not dead" in body["detail"]
    assert stored(crm, delivered).status == "delivered"
    problem(api.post("/deliveries/999999/replay"), 404)


def test_replaying_every_dead_letter_or_a_consumers(api, crm):
    _e1, (a, b, ok) = add_event(
        crm, deliveries=(("webhook:1", "dead"), ("webhook:2", "dead"), ("webhook:3", "delivered"))
    )
    _e2, (c,) = add_event(crm, deliveries=(("webhook:1", "dead"),))
    one = api.post("/deliveries/replay", json={"consumer": "webhook:1"})
    assert one.status_code == 200, one.get_json()
    assert one.get_json() == {"replayed": [a, c]}
    assert stored(crm, b).status == "dead"
    rest = api.post("/deliveries/replay")  # no body: every dead letter
    assert rest.get_json() == {"replayed": [b]}
    assert api.post("/deliveries/replay", json={}).get_json() == {"replayed": []}
    assert stored(crm, ok).status == "delivered"
    problem(api.post("/deliveries/replay", json={"consumer": ""}), 422)
    problem(api.post("/deliveries/replay", json={"consumer": 3}), 422)
    problem(api.post("/deliveries/replay", json={"everything": True}), 422)
    problem(api.post("/deliveries/replay", json=[1]), 400)


def test_a_webhooks_deliveries(api, crm):
    hook = api.post(
        "/webhooks", json={"url": "https://r.example.com/", "event_types": ["*"]}
    ).get_json()
    consumer = f"webhook:{hook['id']}"
    _e1, (first,) = add_event(crm, deliveries=((consumer, "dead"),))
    _e2, (other, second) = add_event(
        crm, deliveries=(("webhook:999", "dead"), (consumer, "delivered"))
    )
    url = hook["links"]["deliveries"]
    assert [d["id"] for d in api.get(url).get_json()["data"]] == [second, first]
    dead = api.get(url, query_string={"status": "dead"}).get_json()["data"]
    assert [d["id"] for d in dead] == [first]
    assert [d["id"] for d in api.collect(url, query_string={"limit": 1})] == [second, first]
    problem(api.get(url, query_string={"status": "gone"}), 400)
    assert other not in [d["id"] for d in api.get(url).get_json()["data"]]


# -- events ---------------------------------------------------------------------------------


def test_events_list_newest_first_with_filters_and_cursor(api, crm):
    base = utcnow() - dt.timedelta(hours=1)
    old, _ = add_event(crm, type="contact.created", entity_id="1", occurred_at=base)
    tie_a, _ = add_event(
        crm, type="contact.updated", entity_id="1", occurred_at=base + dt.timedelta(minutes=1)
    )
    tie_b, _ = add_event(
        crm, type="contact.updated", entity_id="2", occurred_at=base + dt.timedelta(minutes=1)
    )
    with crm.unit_of_work(source="test") as uow:
        customer = customers.create(uow, {"name": "Evented"})
    walked = api.collect("/events", query_string={"limit": 1})
    assert len({e["id"] for e in walked}) == len(walked)
    # The api fixture's token made an event too (api_token.created).
    listed = [e for e in walked if e["entity"] != "api_token"]
    newest = listed[0]
    assert newest["type"] == "customer.created" and newest["status"] == "pending"
    assert newest["entity_id"] == str(customer.id) and newest["payload"]["id"] == customer.id
    ties = sorted([tie_a, tie_b], reverse=True)
    assert [e["id"] for e in listed[1:]] == [*ties, old]
    assert len(listed) == 4

    def ids(**query: str) -> list[str]:
        return [e["id"] for e in api.get("/events", query_string=query).get_json()["data"]]

    assert ids(type="contact.updated") == ties
    assert ids(entity="contact", entity_id="1") == [tie_a, old]
    assert ids(status="dispatched") == [*ties, old]
    assert ids(status="pending", entity="customer") == [newest["id"]]
    assert ids(type="nothing.happened") == []
    assert problem(api.get("/events?status=lost"), 400)["errors"]["status"]
    assert problem(api.get("/events?cursor=bogus"), 400)["errors"] == {
        "cursor": ["Not a valid cursor."]
    }
    problem(api.get("/events?limit=501"), 400)


def test_an_event_with_its_deliveries(api, crm):
    event_id, (dead, ok) = add_event(
        crm, deliveries=(("webhook:1", "dead"), ("crm_sales.sync", "delivered"))
    )
    body = api.get(f"/events/{event_id}").get_json()
    assert body["id"] == event_id and body["type"] == "contact.created"
    assert body["links"] == {"self": f"/api/v1/events/{event_id}"}
    assert [(d["id"], d["consumer"], d["status"]) for d in body["deliveries"]] == [
        (dead, "webhook:1", "dead"),
        (ok, "crm_sales.sync", "delivered"),
    ]
    assert all(d["event_type"] == "contact.created" for d in body["deliveries"])
    for missing in ("00000000-0000-0000-0000-000000000000", "x" * 37, "nope"):
        problem(api.get(f"/events/{missing}"), 404)


# -- end to end: a replay reaches the receiver ------------------------------------------------


class TestReplayWithJobsRunningAtOnce:
    """With ``queue_url = memory://`` the replayed delivery is attempted right after commit."""

    @pytest.fixture
    def crm_settings_overrides(self) -> dict[str, Any]:
        return {}

    def test_the_replayed_event_is_delivered_signed(self, api, crm):
        with WebhookReceiver() as receiver:
            created = api.post(
                "/webhooks", json={"url": receiver.url, "event_types": ["contact.*"]}
            ).get_json()
            receiver.secret = created["secret"]
            event_id, (ident,) = add_event(crm, deliveries=((f"webhook:{created['id']}", "dead"),))
            response = api.post(f"/deliveries/{ident}/replay")
            assert response.status_code == 200, response.get_json()
            assert response.get_json()["status"] == "pending"
        assert receiver.receipts == [event_id] and receiver.bad_signatures == 0
        body = api.get(f"/deliveries/{ident}").get_json()
        assert body["status"] == "delivered" and body["attempts"] == 1
        assert body["attempt_log"][0]["ok"] is True
        assert body["attempt_log"][0]["status_code"] == 200
