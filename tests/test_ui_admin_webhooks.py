"""Webhooks in the UI: the list, a new one (its secret shown once), disabling, enabling,
rotating, deleting, the delivery log with its attempts, and replaying dead letters.

Deliveries are made directly, as ``tests/test_deliveries_api.py`` does; a real queue that
no worker consumes keeps replayed deliveries as the replay left them.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest
from sqlalchemy import select
from ui_support import count_rows, statement_count, stored_row

from crm_core.db import utcnow
from crm_core.models import AuditEntry, DeliveryAttempt, EventDelivery, OutboxEvent, Webhook
from crm_core.services import webhooks
from crm_core.testing import UiBrowser, link_of, ui_user

HOOK = {"url": "https://receiver.example.com/crm", "event_types": ["contact.*"]}


@pytest.fixture
def crm_settings_overrides(tmp_path: Any) -> dict[str, Any]:
    """A real queue no worker consumes: replayed deliveries stay as the replay left them."""
    return {"queue_url": f"sqlite:///{tmp_path / 'queue.sqlite3'}"}


@pytest.fixture
def hook(crm: Any) -> Webhook:
    with crm.unit_of_work(source="test") as uow:
        created, _secret = webhooks.create(uow, HOOK)
    return created


def add_delivery(crm: Any, consumer: str, status: str, *, type: str = "contact.created",
                 attempts: int = 3) -> int:
    """An outbox event with one delivery to ``consumer`` and its failed attempts."""
    with crm.unit_of_work(source="test") as uow:
        event = OutboxEvent(type=type, entity=type.split(".")[0], entity_id="7",
                            payload={"id": 7, "changes": {}}, status="dispatched",
                            occurred_at=utcnow())
        uow.session.add(event)
        uow.session.flush()
        delivery = EventDelivery(
            event_id=event.id, consumer=consumer, status=status, attempts=attempts,
            last_status_code=500, last_error="HTTP 500: boom",
            next_attempt_at=utcnow() + dt.timedelta(minutes=5),
        )
        uow.session.add(delivery)
        uow.session.flush()
        for number in range(attempts):
            uow.session.add(DeliveryAttempt(
                delivery_id=delivery.id, attempted_at=utcnow() + dt.timedelta(seconds=number),
                duration_ms=12.5, ok=False, status_code=500 if number else None,
                error="HTTP 500: boom" if number else "connection refused",
            ))
        return delivery.id


def _seen(page: str) -> dict[str, str]:
    """The hidden fields of the first action form on a webhook's page (version, seen-*)."""
    form = page[page.index('name="version"') - 60:]
    return {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(r'name="(version|seen-[a-z_]+)" value="([^"]*)"', form)[:4]
    }


# -- the list and a new webhook -------------------------------------------------------------------


def test_a_new_webhook_shows_its_secret_once_and_is_listed(crm, ui):
    form = ui.get("/admin/webhooks/new")
    assert 'id="event_types-all" name="event_types" value="*"' in form
    assert 'value="contact.*"' in form and 'name="other_event_types"' in form
    response = ui.post(
        "/admin/webhooks/new",
        {"url": "https://erp.example.com/hook", "description": "ERP mirror",
         "event_types": ["contact.*", "customer.created"], "other_event_types": "deal.won, deal.*"},
        status=200,
    )
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    secret = re.search(r'id="signing-secret" type="text" readonly value="([^"]+)"', page).group(1)
    with crm.session_factory() as session:
        stored = session.scalar(select(Webhook))
        assert stored.secret == secret and stored.description == "ERP mirror"
        assert stored.event_types == ["contact.*", "customer.created", "deal.won", "deal.*"]
        source = session.scalar(
            select(AuditEntry.source).where(AuditEntry.entity == "webhook",
                                            AuditEntry.action == "created")
        )
    assert source == "ui"
    listed = ui.get("/admin/webhooks")
    assert f'href="/admin/webhooks/{stored.id}">https://erp.example.com/hook</a>' in listed
    assert "<code>deal.won</code>" in listed and "state-active\">enabled" in listed
    assert secret not in listed and secret not in ui.get(f"/admin/webhooks/{stored.id}")


def test_a_refused_webhook_shows_each_message_and_saves_nothing(crm, ui):
    page = ui.post(
        "/admin/webhooks/new",
        {"url": "ftp://files.example.com", "description": "d" * 501},
        status=422,
    ).get_data(as_text=True)
    for name in ("url", "description", "event_types"):
        assert f'id="{name}-errors"' in page, name
    assert "Give an absolute http:// or https:// URL" in page
    assert "Give 1 to 50 event types." in page
    assert 'value="ftp://files.example.com"' in page and "nothing was saved" in page
    page = ui.post(
        "/admin/webhooks/new",
        {"url": "https://ok.example.com", "event_types": ["contact.*"],
         "other_event_types": "Not A Type"},
        status=422,
    ).get_data(as_text=True)
    assert "Use *, &lt;entity&gt;.* or &lt;entity&gt;.&lt;action&gt;" in page
    assert 'value="contact.*" checked' in page and 'value="Not A Type"' in page
    assert count_rows(crm, Webhook) == 0


def test_the_list_pages_by_id(crm, ui):
    with crm.unit_of_work(source="test") as uow:
        for number in range(52):
            webhooks.create(uow, {**HOOK, "url": f"https://r{number:02d}.example.com/"})
    first = ui.get("/admin/webhooks")
    assert first.count('<th scope="row">') == 50 and "r49.example.com" in first
    following = link_of(first)
    second = ui.get(following)
    assert second.count('<th scope="row">') == 2 and "r51.example.com" in second
    ui.get("/admin/webhooks?after=-1", status=400)
    ui.get(f"/admin/webhooks?after={2**40}", status=400)  # no id is that large


# -- the webhook's page and its delivery log ------------------------------------------------------


def test_the_delivery_log_shows_attempts_codes_errors_and_next_try(crm, ui, hook):
    consumer = webhooks.consumer_name(hook.id)
    dead = add_delivery(crm, consumer, "dead", type="contact.updated")
    pending = add_delivery(crm, consumer, "pending", attempts=2)
    add_delivery(crm, "webhook:999999", "dead", type="contact.archived")  # another consumer
    page = ui.get(f"/admin/webhooks/{hook.id}")
    assert "<code>contact.*</code>" in page and "state-active\">enabled" in page
    log = page[page.index('class="list deliveries"'):]
    assert log.index(f"delivery {pending}") < log.index(f"delivery {dead}")  # newest first
    assert "contact.archived" not in log
    assert "HTTP 500" in log and "connection refused" in log and "(12 ms)" in log
    pending_row = log[log.index(f"delivery {pending}"):log.index(f"delivery {dead}")]
    assert '<span class="badge delivery-pending">pending</span>' in pending_row
    assert "2 attempts" in pending_row and "<time datetime=" in pending_row.split("</ol>")[1]
    dead_row = log[log.index(f"delivery {dead}"):]
    assert "3 attempts" in dead_row and "Replay<span" in dead_row
    dead_page = ui.get(f"/admin/webhooks/{hook.id}?status=dead")
    assert f"delivery {dead}" in dead_page and f"delivery {pending}" not in dead_page
    assert "Replay every dead letter" in dead_page
    ui.get(f"/admin/webhooks/{hook.id}?status=lost", status=400)
    ui.get(f"/admin/webhooks/{hook.id}?before=abc", status=400)
    assert "There is no webhook" in ui.get("/admin/webhooks/999999", status=404)
    ui.get(f"/admin/webhooks/{2**40}", status=404)
    ui.get(f"/admin/webhooks/{hook.id}?before={2**40}", status=400)


def test_the_delivery_log_pages_newest_first(crm, ui, hook):
    consumer = webhooks.consumer_name(hook.id)
    ids = [add_delivery(crm, consumer, "delivered", attempts=1) for _ in range(27)]
    first = ui.get(f"/admin/webhooks/{hook.id}")
    assert first.count('<th scope="row"><code>') == 25
    assert f"delivery {ids[-1]} " in first and f"delivery {ids[1]} " not in first
    following = link_of(first)
    second = ui.get(following)
    assert second.count('<th scope="row"><code>') == 2
    assert f"delivery {ids[0]} " in second and f"delivery {ids[1]} " in second
    assert "Older deliveries" not in second and ">Newest</a>" in second


def test_the_delivery_log_takes_as_many_queries_for_many_deliveries_as_for_few(crm, ui, hook):
    consumer = webhooks.consumer_name(hook.id)
    add_delivery(crm, consumer, "dead")
    few = statement_count(crm, lambda: ui.get(f"/admin/webhooks/{hook.id}"))
    for _ in range(10):
        add_delivery(crm, consumer, "dead")
    many = statement_count(crm, lambda: ui.get(f"/admin/webhooks/{hook.id}"))
    assert many == few and few > 3, (few, many)


def test_replaying_one_dead_letter_and_all_of_them(crm, ui, hook):
    consumer = webhooks.consumer_name(hook.id)
    first, second, third = (add_delivery(crm, consumer, "dead") for _ in range(3))
    delivered = add_delivery(crm, consumer, "delivered", attempts=1)
    response = ui.post(f"/admin/webhooks/{hook.id}/deliveries/{first}/replay", {"status": "dead"})
    assert response.headers["Location"] == f"/admin/webhooks/{hook.id}?status=dead"
    assert f"Delivery {first} (contact.created) will be tried again." in ui.get(
        response.headers["Location"]
    )
    replayed = stored_row(crm, EventDelivery, first)
    assert replayed.status == "pending" and replayed.attempts == 0
    assert stored_row(crm, EventDelivery, second).status == "dead"
    page = ui.post(
        f"/admin/webhooks/{hook.id}/deliveries/{delivered}/replay", {}, status=409
    ).get_data(as_text=True)
    assert f"Delivery {delivered} is delivered: only dead letters can be replayed." in page
    response = ui.post(f"/admin/webhooks/{hook.id}/replay-dead", {"status": "dead"})
    assert "2 dead letters will be tried again." in ui.get(response.headers["Location"])
    assert {stored_row(crm, EventDelivery, i).status for i in (second, third)} == {"pending"}
    ui.post(f"/admin/webhooks/{hook.id}/replay-dead", {})
    assert "There were no dead letters to replay." in ui.get(f"/admin/webhooks/{hook.id}")


def test_a_delivery_of_another_webhook_is_not_found_here(crm, ui, hook):
    with crm.unit_of_work(source="test") as uow:
        other, _secret = webhooks.create(uow, {**HOOK, "url": "https://other.example.com/"})
    theirs = add_delivery(crm, webhooks.consumer_name(other.id), "dead")
    ui.post(f"/admin/webhooks/{hook.id}/deliveries/{theirs}/replay", {}, status=404)
    ui.post(f"/admin/webhooks/{hook.id}/deliveries/999999/replay", {}, status=404)
    ui.post(f"/admin/webhooks/{hook.id}/deliveries/{2**40}/replay", {}, status=404)
    assert stored_row(crm, EventDelivery, theirs).status == "dead"


# -- disable, enable, rotate, delete ------------------------------------------------------------


def test_disabling_with_a_reason_and_enabling_again(crm, ui, hook):
    seen = _seen(ui.get(f"/admin/webhooks/{hook.id}"))
    assert seen == {"version": "1", "seen-state": "active",
                    "seen-url": HOOK["url"], "seen-event_types": "contact.*"}
    response = ui.post(f"/admin/webhooks/{hook.id}/disable", {**seen, "reason": "ERP upgrade"})
    assert response.headers["Location"] == f"/admin/webhooks/{hook.id}"
    page = ui.get(f"/admin/webhooks/{hook.id}")
    assert "The webhook is disabled" in page
    assert 'state-inactive">disabled</span> ERP upgrade' in page
    assert "ERP upgrade" in ui.get("/admin/webhooks")
    stored = stored_row(crm, Webhook, hook.id)
    assert not stored.active and stored.disabled_reason == "ERP upgrade"
    ui.post(f"/admin/webhooks/{hook.id}/enable", _seen(page))
    stored = stored_row(crm, Webhook, hook.id)
    assert stored.active and stored.disabled_reason is None and stored.failure_streak == 0
    assert "The webhook is enabled." in ui.get(f"/admin/webhooks/{hook.id}")


def test_a_refused_reason_is_explained_and_nothing_changes(crm, ui, hook):
    seen = _seen(ui.get(f"/admin/webhooks/{hook.id}"))
    page = ui.post(
        f"/admin/webhooks/{hook.id}/disable", {**seen, "reason": "r" * 501}, status=422
    ).get_data(as_text=True)
    assert 'id="reason-errors"' in page and "Use at most 500 characters." in page
    assert 'aria-invalid="true"' in page and f'value="{"r" * 501}"' in page
    assert stored_row(crm, Webhook, hook.id).active
    ui.post(f"/admin/webhooks/{hook.id}/disable", {"reason": "x"}, status=400)  # no version


def test_an_action_on_a_webhook_changed_meanwhile_shows_what_changed(crm, ui, hook):
    seen = _seen(ui.get(f"/admin/webhooks/{hook.id}"))
    with crm.unit_of_work(source="test") as uow:
        webhooks.update(uow, hook.id, {"url": "https://moved.example.com/crm"})
    for action in ("disable", "enable", "rotate-secret", "delete"):
        page = ui.post(f"/admin/webhooks/{hook.id}/{action}", seen, status=409).get_data(
            as_text=True
        )
        assert "The webhook changed after you opened this page" in page, action
        assert re.search(
            r'<th scope="row">URL</th><td>https://moved.example.com/crm</td>'
            r'<td>https://receiver.example.com/crm</td>', page
        ), action
        assert "<th scope=\"row\">State</th>" not in page
    stored = stored_row(crm, Webhook, hook.id)
    assert stored.active and stored.secret == hook.secret and stored.version == 2


def test_rotating_the_secret_shows_the_new_one_once(crm, ui, hook):
    seen = _seen(ui.get(f"/admin/webhooks/{hook.id}"))
    response = ui.post(f"/admin/webhooks/{hook.id}/rotate-secret", seen, status=200)
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    secret = re.search(r'id="signing-secret" type="text" readonly value="([^"]+)"', page).group(1)
    assert "New signing secret" in page and secret != hook.secret
    assert stored_row(crm, Webhook, hook.id).secret == secret


def test_deleting_asks_first_then_deletes(crm, ui, hook):
    page = ui.get(f"/admin/webhooks/{hook.id}/delete")
    assert f"Delete the webhook for {HOOK['url']}?" in page
    response = ui.post(f"/admin/webhooks/{hook.id}/delete", _seen(page))
    assert response.headers["Location"] == "/admin/webhooks"
    assert f"The webhook for {HOOK['url']} was deleted." in ui.get("/admin/webhooks")
    assert count_rows(crm, Webhook, Webhook.id == hook.id) == 0
    ui.get(f"/admin/webhooks/{hook.id}", status=404)
    ui.get(f"/admin/webhooks/{hook.id}/delete", status=404)


# -- editing ------------------------------------------------------------------------------------


def test_editing_a_webhook_changes_its_url_description_and_event_types(crm, ui, hook):
    edit = f"/admin/webhooks/{hook.id}/edit"
    assert f'href="{edit}">Edit<span' in ui.get(f"/admin/webhooks/{hook.id}")
    form = ui.get(edit)
    assert "<h1>Edit the webhook</h1>" in form and 'name="version" value="1"' in form
    assert f'name="url" type="url" value="{HOOK["url"]}"' in form
    assert 'value="contact.*" checked' in form and 'value="customer.*" checked' not in form
    assert f'href="/admin/webhooks/{hook.id}">Cancel</a>' in form  # back to the webhook
    response = ui.post(edit, {
        "version": "1", "url": "https://moved.example.com/crm", "description": "ERP mirror",
        "event_types": ["customer.*", "contact.*"], "other_event_types": "deal.won",
    })
    assert response.headers["Location"] == f"/admin/webhooks/{hook.id}"
    page = ui.get(response.headers["Location"])
    assert "The webhook for https://moved.example.com/crm was saved." in page
    stored = stored_row(crm, Webhook, hook.id)
    assert stored.url == "https://moved.example.com/crm" and stored.description == "ERP mirror"
    # the types it had keep their place, new ones follow
    assert stored.event_types == ["contact.*", "customer.*", "deal.won"]
    assert stored.active and stored.secret == hook.secret and stored.version == 2
    with crm.session_factory() as session:
        source = session.scalar(select(AuditEntry.source).where(
            AuditEntry.entity == "webhook", AuditEntry.action == "updated"))
    assert source == "ui"
    form = ui.get(edit)  # a typed-in type comes back typed in, the offered ones ticked
    assert 'name="other_event_types" type="text" value="deal.won"' in form
    assert 'value="customer.*" checked' in form and 'name="version" value="2"' in form
    ui.post(edit, {  # saved unchanged (boxes in another order): nothing changes
        "version": "2", "url": "https://moved.example.com/crm", "description": "ERP mirror",
        "event_types": ["contact.*", "customer.*"], "other_event_types": "deal.won",
    })
    assert stored_row(crm, Webhook, hook.id).version == 2


def test_a_refused_edit_shows_each_message_and_changes_nothing(crm, ui, hook):
    edit = f"/admin/webhooks/{hook.id}/edit"
    page = ui.post(
        edit, {"version": "1", "url": "ftp://files.example.com", "description": "Moved"},
        status=422,
    ).get_data(as_text=True)
    assert 'id="url-errors"' in page and "Give an absolute http:// or https:// URL" in page
    assert 'id="event_types-errors"' in page and "Give 1 to 50 event types." in page
    assert 'value="ftp://files.example.com"' in page and 'value="Moved"' in page
    assert "nothing was saved" in page and 'name="version" value="1"' in page
    stored = stored_row(crm, Webhook, hook.id)
    assert stored.url == HOOK["url"] and stored.event_types == HOOK["event_types"]
    assert stored.description == "" and stored.version == 1
    ui.post(edit, {"url": HOOK["url"], "event_types": ["*"]}, status=400)  # no version


def test_an_edit_of_a_webhook_changed_meanwhile_shows_both_and_can_be_saved_again(crm, ui, hook):
    edit = f"/admin/webhooks/{hook.id}/edit"
    with crm.unit_of_work(source="test") as uow:
        webhooks.update(uow, hook.id, {"url": "https://moved.example.com/crm"})
    mine = {"version": "1", "url": "https://mine.example.com/crm", "event_types": ["contact.*"]}
    page = ui.post(edit, mine, status=409).get_data(as_text=True)
    assert "while you were editing" in page
    assert re.search(
        r'<th scope="row">URL</th><td>https://moved.example.com/crm</td>'
        r'<td>https://mine.example.com/crm</td>', page
    )
    assert "Event types</th>" not in page.split("<form")[0]  # the same on both sides
    assert 'name="version" value="2"' in page
    assert stored_row(crm, Webhook, hook.id).url == "https://moved.example.com/crm"
    ui.post(edit, {**mine, "version": "2"})  # save mine anyway
    stored = stored_row(crm, Webhook, hook.id)
    assert stored.url == "https://mine.example.com/crm" and stored.version == 3


def test_editing_an_unknown_webhook_is_not_found(ui):
    assert "There is no webhook" in ui.get("/admin/webhooks/999999/edit", status=404)
    ui.post("/admin/webhooks/999999/edit", {**HOOK, "version": "1"}, status=404)
    ui.get(f"/admin/webhooks/{2**40}/edit", status=404)


def test_editing_needs_webhook_admin(crm, client, hook):
    ui_user(crm, "people@ui.example", ["user.admin"])
    browser = UiBrowser(client, "people@ui.example")
    assert "webhook.admin" in browser.get(f"/admin/webhooks/{hook.id}/edit", status=403)
    browser.post(
        f"/admin/webhooks/{hook.id}/edit",
        {"version": "1", "url": "https://evil.example.com/", "event_types": ["*"]},
        status=403,
    )
    browser.get("/admin/webhooks/999999/edit", status=403)  # nothing told about other ids
    stored = stored_row(crm, Webhook, hook.id)
    assert stored.url == HOOK["url"] and stored.event_types == HOOK["event_types"]
    assert stored.version == 1


# -- permissions ----------------------------------------------------------------------------------


def test_webhooks_need_webhook_admin(crm, client, hook):
    dead = add_delivery(crm, webhooks.consumer_name(hook.id), "dead")
    ui_user(crm, "people@ui.example", ["user.admin", "plugin.admin"])
    browser = UiBrowser(client, "people@ui.example")
    assert "webhook.admin" in browser.get("/admin/webhooks", status=403)
    for path in ("/admin/webhooks/new", f"/admin/webhooks/{hook.id}",
                 f"/admin/webhooks/{hook.id}/delete"):
        browser.get(path, status=403)
    seen = {"version": "1"}
    browser.post("/admin/webhooks/new", {**HOOK, "event_types": "*"}, status=403)
    for action in ("disable", "enable", "rotate-secret", "delete", "replay-dead"):
        browser.post(f"/admin/webhooks/{hook.id}/{action}", seen, status=403)
    browser.post(f"/admin/webhooks/{hook.id}/deliveries/{dead}/replay", {}, status=403)
    stored = stored_row(crm, Webhook, hook.id)
    assert stored.active and stored.secret == hook.secret and count_rows(crm, Webhook) == 1
    assert stored_row(crm, EventDelivery, dead).status == "dead"
