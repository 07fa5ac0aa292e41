"""Webhooks through ``/api/v1/webhooks`` and the service: CRUD, validation, versions,
enable/disable/rotate, permissions, and a secret that is shown once and stored nowhere else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from crm_core import ConflictError, NotFoundError, PermissionDenied, ValidationError
from crm_core.models import AuditEntry, OutboxEvent, Webhook
from crm_core.services import webhooks
from crm_core.testing import ApiClient as Api
from crm_core.testing import api_token, make_user

pytestmark = pytest.mark.plugins()

PROBLEM = "application/problem+json"
HOOK = {"url": "https://receiver.example.com/crm", "event_types": ["contact.*"]}


def problem(response: Any, status: int) -> dict[str, Any]:
    """Assert ``response`` is a problem document with ``status``; return it."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status
    return body


def create(api: Api, **changes: Any) -> dict[str, Any]:
    response = api.post("/webhooks", json={**HOOK, **changes})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def stored(crm: Any, webhook_id: int) -> Webhook | None:
    with crm.session_factory() as session:
        return session.get(Webhook, webhook_id)


def everything_recorded(crm: Any) -> str:
    """Every audit entry and outbox event about webhooks, as one JSON text."""
    with crm.session_factory() as session:
        audit = session.scalars(select(AuditEntry).where(AuditEntry.entity == "webhook"))
        outbox = session.scalars(select(OutboxEvent).where(OutboxEvent.entity == "webhook"))
        return json.dumps(
            {
                "audit": [[e.action, e.entity_id, e.changes] for e in audit],
                "outbox": [[e.type, e.entity_id, e.payload] for e in outbox],
            }
        )


# -- create, read, list -------------------------------------------------------------------


def test_create_answers_201_and_shows_the_secret_only_then(api, crm):
    response = api.post(
        "/webhooks",
        json={
            "url": " https://receiver.example.com/crm ",
            "event_types": ["contact.*", "*"],
            "description": "Mirror to the ERP",
        },
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"].endswith(f"/api/v1/webhooks/{body['id']}")
    assert body["url"] == "https://receiver.example.com/crm"
    assert body["event_types"] == ["contact.*", "*"]
    assert body["active"] is True and body["failure_streak"] == 0
    assert body["disabled_at"] is None and body["version"] == 1
    assert body["links"] == {
        "self": f"/api/v1/webhooks/{body['id']}",
        "deliveries": f"/api/v1/webhooks/{body['id']}/deliveries",
    }
    assert stored(crm, body["id"]).secret == secret
    # Never again: not on GET, not in lists, not in the audit log or the outbox.
    fetched = api.get(f"/webhooks/{body['id']}").get_json()
    assert "secret" not in fetched
    assert fetched == {k: v for k, v in body.items() if k != "secret"}
    listed = api.get("/webhooks").get_json()["data"]
    assert [item["id"] for item in listed] == [body["id"]]
    assert "secret" not in listed[0]
    recorded = everything_recorded(crm)
    assert '"webhook.created"' in recorded and "receiver.example.com" in recorded
    assert secret not in recorded and "secret" not in recorded
    audit = api.get("/audit", query_string={"entity": "webhook"}).get_json()["data"]
    assert [entry["action"] for entry in audit] == ["created"]
    assert audit[0]["changes"]["event_types"] == [None, ["contact.*", "*"]]
    assert secret not in json.dumps(audit)


def test_a_secret_can_be_given_and_is_never_echoed_elsewhere(api, crm):
    chosen = "s3cr3t-chosen-by-the-receiver-team"
    body = create(api, secret=chosen)
    assert body["secret"] == chosen
    assert stored(crm, body["id"]).secret == chosen
    assert chosen not in api.get(f"/webhooks/{body['id']}").get_data(as_text=True)
    assert chosen not in everything_recorded(crm)


def test_if_none_match_and_unknown_ids(api):
    body = create(api)
    url = f"/webhooks/{body['id']}"
    assert api.get(url, headers={"If-None-Match": '"1"'}).status_code == 304
    assert api.get(url, headers={"If-None-Match": '"0"'}).status_code == 200
    for ident in ("999999", "0", "abc", "-1", "99999999999999999999"):
        for method, path in (
            ("GET", ""),
            ("PATCH", ""),
            ("DELETE", ""),
            ("POST", "/enable"),
            ("POST", "/disable"),
            ("POST", "/rotate-secret"),
            ("GET", "/deliveries"),
        ):
            response = api(method, f"/webhooks/{ident}{path}", json={}, headers={"If-Match": '"1"'})
            assert problem(response, 404)["type"].endswith(":not-found"), (method, path)


def test_the_list_is_keyset_paginated_by_id(api):
    made = [create(api, url=f"https://r{i}.example.com/")["id"] for i in range(5)]
    seen = api.collect("/webhooks", query_string={"limit": 2})
    assert [item["id"] for item in seen] == made
    first = api.get("/webhooks", query_string={"limit": 2}).get_json()
    assert "after_id=" in first["next"] and len(first["data"]) == 2
    problem(api.get("/webhooks", query_string={"after_id": "x"}), 400)
    problem(api.get("/webhooks", query_string={"limit": 0}), 400)


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"url": "ftp://files.example.com/in"}, "url"),
        ({"url": "https://exa mple.com/hook"}, "url"),
        ({"url": "https://example.com/a b"}, "url"),
        ({"url": "https:///nohost"}, "url"),
        ({"url": "/relative/path"}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "https://example.com:99999/"}, "url"),
        ({"url": "https://example.com/" + "a" * 2000}, "url"),
        ({"url": 42}, "url"),
        ({"event_types": []}, "event_types"),
        ({"event_types": "contact.created"}, "event_types"),
        ({"event_types": ["Contact.Created"]}, "event_types"),
        ({"event_types": ["contact"]}, "event_types"),
        ({"event_types": ["contact.created.x"]}, "event_types"),
        ({"event_types": ["*.created"]}, "event_types"),
        ({"event_types": ["contact.cre-ated"]}, "event_types"),
        ({"event_types": [f"e{i}.created" for i in range(51)]}, "event_types"),
        ({"description": "x" * 501}, "description"),
        ({"secret": "too-short"}, "secret"),
        ({"secret": "has spaces in it but is long enough"}, "secret"),
        ({"active": False}, "active"),
        ({"id": 7}, "id"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(api, crm, changes, field):
    body = problem(api.post("/webhooks", json={**HOOK, **changes}), 422)
    assert body["type"].endswith(":validation")
    assert set(body["errors"]) == {field}, body["errors"]
    with crm.session_factory() as session:
        assert session.scalar(select(Webhook.id)) is None


def test_missing_fields_and_item_errors_are_named(api):
    body = problem(api.post("/webhooks", json={}), 422)
    assert set(body["errors"]) == {"url", "event_types"}
    items = problem(api.post("/webhooks", json={**HOOK, "event_types": ["ok.x", "Bad"]}), 422)
    assert list(items["errors"]["event_types"]) == ["1"]


def test_accepted_urls_and_patterns(api):
    body = create(
        api,
        url="http://127.0.0.1:8080/hooks/crm?tenant=7",
        event_types=["*", "contact.*", "customer.created", "api_token.revoked", "contact.*"],
    )
    assert body["url"] == "http://127.0.0.1:8080/hooks/crm?tenant=7"
    assert body["event_types"] == ["*", "contact.*", "customer.created", "api_token.revoked"]
    assert create(api, event_types=[f"e{i}.created" for i in range(50)])["id"]


# -- changes, versions --------------------------------------------------------------------


def test_patch_needs_the_current_version(api, crm):
    body = create(api)
    url = f"/webhooks/{body['id']}"
    problem(api.patch(url, json={"description": "x"}), 428)
    changed = api.patch(
        url,
        json={"url": "https://new.example.com/in", "event_types": ["customer.*"]},
        headers={"If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.get_json()
    assert changed.headers["ETag"] == '"2"'
    assert changed.get_json()["url"] == "https://new.example.com/in"
    assert "secret" not in changed.get_json()
    stale = api.patch(url, json={"description": "late"}, headers={"If-Match": '"1"'})
    problem(stale, 412)
    assert stale.headers["ETag"] == '"2"'
    assert api.get(url).get_json()["description"] == ""
    problem(api.patch(url, json={"secret": "x" * 30}, headers={"If-Match": '"2"'}), 422)
    bad = problem(api.patch(url, json={"url": "mailto:a@b.c"}, headers={"If-Match": '"2"'}), 422)
    assert set(bad["errors"]) == {"url"}
    same = api.patch(url, json={"url": "https://new.example.com/in"}, headers={"If-Match": '"2"'})
    assert same.headers["ETag"] == '"2"'  # nothing changed, nothing written
    audit = api.get("/audit", query_string={"entity": "webhook"}).get_json()["data"]
    assert [entry["action"] for entry in audit] == ["updated", "created"]
    assert audit[0]["changes"] == {
        "url": ["https://receiver.example.com/crm", "https://new.example.com/in"],
        "event_types": [["contact.*"], ["customer.*"]],
    }


def test_delete_answers_204_and_records_it(api, crm):
    body = create(api)
    url = f"/webhooks/{body['id']}"
    problem(api.delete(url, headers={"If-Match": '"7"'}), 412)
    response = api.delete(url)
    assert response.status_code == 204 and response.data == b""
    problem(api.get(url), 404)
    assert stored(crm, body["id"]) is None
    assert '"webhook.deleted"' in everything_recorded(crm)


def test_disable_enable_and_rotate_secret(api, crm):
    body = create(api)
    url = f"/webhooks/{body['id']}"
    disabled = api.post(f"{url}/disable", json={"reason": "receiver under maintenance"})
    assert disabled.status_code == 200, disabled.get_json()
    state = disabled.get_json()
    assert state["active"] is False and state["disabled_reason"] == "receiver under maintenance"
    assert state["disabled_at"] is not None and disabled.headers["ETag"] == '"2"'
    again = api.post(f"{url}/disable").get_json()  # no body: a no-op on a disabled webhook
    assert again["version"] == 2 and again["disabled_reason"] == "receiver under maintenance"
    with crm.session_factory() as session:
        session.execute(
            Webhook.__table__.update().where(Webhook.id == body["id"]).values(failure_streak=9)
        )
        session.commit()
    enabled = api.post(f"{url}/enable").get_json()
    assert enabled["active"] is True and enabled["failure_streak"] == 0
    assert enabled["disabled_at"] is None and enabled["disabled_reason"] is None
    problem(api.post(f"{url}/enable", headers={"If-Match": '"1"'}), 412)

    rotated = api.post(f"{url}/rotate-secret")
    assert rotated.status_code == 200
    new_secret = rotated.get_json()["secret"]
    assert new_secret != body["secret"] and new_secret.startswith("whsec_")
    assert stored(crm, body["id"]).secret == new_secret
    assert "secret" not in api.get(url).get_json()

    default = api.post(f"{url}/disable", json={}).get_json()
    assert default["disabled_reason"] == "disabled by an admin"
    problem(api.post(f"{url}/disable", json={"reason": "x" * 501}), 422)
    problem(api.post(f"{url}/disable", json={"why": "?"}), 422)
    problem(api.post(f"{url}/disable", data="nope", content_type="text/plain"), 415)

    recorded = everything_recorded(crm)
    for action in ("created", "disabled", "enabled", "secret_rotated"):
        assert f'"webhook.{action}"' in recorded, action
    assert body["secret"] not in recorded and new_secret not in recorded
    actions = [e["action"] for e in api.get("/audit?entity=webhook").get_json()["data"]]
    assert actions == ["disabled", "secret_rotated", "enabled", "disabled", "created"]


# -- permissions --------------------------------------------------------------------------

ROUTES = [
    ("GET", "/webhooks"),
    ("POST", "/webhooks"),
    ("GET", "/webhooks/{id}"),
    ("PATCH", "/webhooks/{id}"),
    ("DELETE", "/webhooks/{id}"),
    ("POST", "/webhooks/{id}/enable"),
    ("POST", "/webhooks/{id}/disable"),
    ("POST", "/webhooks/{id}/rotate-secret"),
    ("GET", "/webhooks/{id}/deliveries"),
    ("GET", "/events"),
    ("GET", "/events/00000000-0000-0000-0000-000000000000"),
    ("GET", "/deliveries"),
    ("GET", "/deliveries/1"),
    ("POST", "/deliveries/1/replay"),
    ("POST", "/deliveries/replay"),
]


def test_everything_needs_webhook_admin(api, client, crm):
    hook = create(api)
    others = [p for p in crm.registry.permissions if p != "webhook.admin"]
    clerk = Api(client, api_token(crm, make_user(crm, "clerk@example.com", others)))
    anonymous = Api(client, None)
    for method, path in ROUTES:
        path = path.format(id=hook["id"])
        kwargs = {"json": HOOK, "headers": {"If-Match": '"1"'}}
        body = problem(clerk(method, path, **kwargs), 403)
        assert "webhook.admin" in body["detail"], path
        problem(anonymous(method, path, **kwargs), 401)
    assert stored(crm, hook["id"]).version == 1


def test_the_service_checks_permissions_versions_and_ids(crm):
    clerk = make_user(crm, "svc-clerk@example.com", ["customer.view"])
    with crm.unit_of_work(actor=clerk) as uow, pytest.raises(PermissionDenied):
        webhooks.create(uow, HOOK)
    with crm.unit_of_work() as uow:  # the system may
        hook, secret = webhooks.create(uow, HOOK)
    with crm.unit_of_work() as uow, pytest.raises(ConflictError):
        webhooks.update(uow, hook.id, {"description": "x"}, expected_version=5)
    with crm.unit_of_work() as uow, pytest.raises(ValidationError) as refused:
        webhooks.update(uow, hook.id, {"event_types": ["Nope"]})
    assert set(refused.value.messages) == {"event_types"}
    for ident in (0, -1, "x", None, 2**40, 999_999):
        with crm.unit_of_work() as uow, pytest.raises(NotFoundError):
            webhooks.get(uow, ident)
    with crm.unit_of_work() as uow:
        assert [h.id for h in webhooks.list(uow)] == [hook.id]
        assert webhooks.rotate_secret(uow, hook.id) != secret
        webhooks.delete(uow, hook.id)
    with crm.unit_of_work() as uow:
        assert webhooks.list(uow) == []
