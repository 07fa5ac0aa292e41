"""``crm webhooks`` and ``crm events``: a round trip through every command."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from crm_core.models import AuditEntry, EventDelivery, OutboxEvent, Webhook

pytestmark = pytest.mark.plugins()


@pytest.fixture
def crm_settings_overrides(tmp_path: Any) -> dict[str, Any]:
    """A queue no worker consumes: replayed deliveries stay pending."""
    return {"queue_url": f"sqlite:///{tmp_path / 'queue.sqlite3'}"}


def ok(runner: Any, *args: str) -> Any:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result


def webhook(crm: Any, ident: int) -> Webhook | None:
    with crm.session_factory() as session:
        return session.get(Webhook, ident)


def dead_letters(crm: Any, consumers: list[str]) -> list[int]:
    with crm.unit_of_work(source="test") as uow:
        event = OutboxEvent(
            type="contact.created",
            entity="contact",
            entity_id="3",
            payload={"id": 3},
            status="dispatched",
        )
        uow.session.add(event)
        uow.session.flush()
        rows = [
            EventDelivery(
                event_id=event.id,
                consumer=consumer,
                status="dead",
                attempts=8,
                last_status_code=503,
                last_error="HTTP 503: try later",
            )
            for consumer in consumers
        ]
        uow.session.add_all(rows)
        uow.session.flush()
        return [row.id for row in rows]


def test_webhooks_round_trip(runner, crm):
    created = ok(
        runner,
        "webhooks",
        "create",
        "https://erp.example.com/crm",
        "--event",
        "contact.*",
        "--event",
        "customer.created",
        "--description",
        "ERP sync",
    )
    secret = created.stdout.strip()
    assert secret.startswith("whsec_") and "\n" not in secret
    assert "Give the secret to the receiver now" in created.stderr
    with crm.session_factory() as session:
        hook = session.scalars(select(Webhook)).one()
        audit = session.scalars(select(AuditEntry).where(AuditEntry.entity == "webhook")).all()
    assert hook.secret == secret and hook.event_types == ["contact.*", "customer.created"]
    assert [(e.action, e.source, e.actor_id) for e in audit] == [("created", "cli", None)]
    ident = str(hook.id)

    listed = ok(runner, "webhooks", "list")
    assert secret not in listed.output
    header, row = listed.output.splitlines()
    assert header.split()[:4] == ["id", "state", "url", "events"]
    assert row.split()[:4] == [
        ident,
        "active",
        "https://erp.example.com/crm",
        "contact.*,customer.created",
    ]
    as_json = json.loads(ok(runner, "webhooks", "list", "--json").output)
    assert as_json["id"] == hook.id and "secret" not in as_json

    ok(runner, "webhooks", "update", ident, "--url", "https://erp.example.com/v2", "--event", "*")
    assert (webhook(crm, hook.id).url, webhook(crm, hook.id).event_types) == (
        "https://erp.example.com/v2",
        ["*"],
    )
    bad = runner.invoke(args=["webhooks", "update", ident, "--url", "ftp://nope"])
    assert bad.exit_code == 1 and "Error: url:" in bad.output
    assert runner.invoke(args=["webhooks", "update", ident]).exit_code == 2

    disabled = ok(runner, "webhooks", "disable", ident, "--reason", "ERP migration")
    assert "ERP migration" in disabled.output
    assert webhook(crm, hook.id).active is False
    ok(runner, "webhooks", "enable", ident)
    assert webhook(crm, hook.id).active is True

    rotated = ok(runner, "webhooks", "rotate-secret", ident)
    new_secret = rotated.stdout.strip()
    assert new_secret != secret and webhook(crm, hook.id).secret == new_secret

    [dead] = dead_letters(crm, [f"webhook:{hook.id}"])
    shown = ok(runner, "webhooks", "show", ident)
    assert "https://erp.example.com/v2" in shown.output and new_secret not in shown.output
    assert f"{dead} " in shown.output and "dead" in shown.output

    ok(runner, "webhooks", "delete", ident)
    assert webhook(crm, hook.id) is None
    missing = runner.invoke(args=["webhooks", "show", ident])
    assert missing.exit_code == 1 and "not found" in missing.output
    bad_create = runner.invoke(
        args=["webhooks", "create", "https://x.example.com", "--event", "Contact"]
    )
    assert bad_create.exit_code == 1 and "Error: event_types:" in bad_create.output


def test_events_deliveries_and_replay(runner, crm):
    first, second, plugin = dead_letters(crm, ["webhook:1", "webhook:2", "crm_sales.sync"])
    events = ok(runner, "events", "list", "--type", "contact.created")
    assert "contact.created" in events.output and "contact 3" in events.output
    assert ok(runner, "events", "list", "--type", "nothing.at_all").output.strip() == "no events"

    dead = ok(runner, "events", "deliveries", "--status", "dead")
    assert [line.split()[0] for line in dead.output.splitlines()[1:]] == [
        str(plugin),
        str(second),
        str(first),
    ]
    only = ok(runner, "events", "deliveries", "--consumer", "webhook:2")
    assert [line.split()[0] for line in only.output.splitlines()[1:]] == [str(second)]

    shown = ok(runner, "events", "show-delivery", str(first))
    assert "webhook:1" in shown.output and "dead" in shown.output
    assert "no attempts yet" in shown.output

    replayed = ok(runner, "events", "replay", str(first))
    assert replayed.output.strip() == f"replayed 1 delivery: {first}"
    again = runner.invoke(args=["events", "replay", str(first), str(second)])
    assert again.exit_code == 1 and "not dead" in again.output
    with crm.session_factory() as session:  # all or nothing: second is still dead
        assert session.get(EventDelivery, second).status == "dead"
        assert session.get(EventDelivery, first).status == "pending"
    consumer = ok(runner, "events", "replay", "--all-dead", "--consumer", "crm_sales.sync")
    assert consumer.output.strip() == f"replayed 1 delivery: {plugin}"
    rest = ok(runner, "events", "replay", "--all-dead")
    assert rest.output.strip() == f"replayed 1 delivery: {second}"
    assert ok(runner, "events", "replay", "--all-dead").output.strip() == (
        "no dead letters to replay"
    )
    for args in ([], [str(first), "--all-dead"], [str(first), "--consumer", "webhook:1"]):
        assert runner.invoke(args=["events", "replay", *args]).exit_code == 2, args
    assert runner.invoke(args=["events", "show-delivery", "999999"]).exit_code == 1
