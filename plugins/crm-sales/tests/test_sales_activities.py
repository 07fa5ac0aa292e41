"""Activities: the service's rules, completing onto the timeline, reminders, API and pages."""

from __future__ import annotations

import datetime as dt
import html
import os
import warnings
from typing import Any

import hypothesis
import pytest
import schemathesis
from crm_sales.models import Activity
from crm_sales.services import activities, opportunities
from hypothesis import HealthCheck, Phase
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select

from crm_core import NotFoundError, PermissionDenied, ValidationError, utcnow
from crm_core.models import AuditEntry, Interaction, OutboxEvent, User
from crm_core.services import contacts, customers
from crm_core.testing import (
    ApiClient,
    UiBrowser,
    api_token,
    link_of,
    make_user,
    sql_statements,
    ui_user,
)
from crm_core.web.api.openapi import build_openapi

PROBLEM = "application/problem+json"
REP = "rep@sales.example"
ACTIVITY_PERMISSIONS = ["sales.activity.view", "sales.activity.edit", "customer.view"]


def _at(**delta: float) -> str:
    """A moment relative to now, as the API and services take it."""
    return (utcnow() + dt.timedelta(**delta)).isoformat()


def _plan(crm: Any, actor: Any, **data: Any) -> Activity:
    data.setdefault("subject", "Call about the renewal")
    data.setdefault("due_at", _at(days=1))
    with crm.unit_of_work(actor=actor, source="test") as uow:
        return activities.create(uow, data)


def _count(crm: Any, model: Any, *where: Any) -> int:
    with crm.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


@pytest.fixture
def ada(crm: Any, seller: Any, acme: Any) -> Any:
    """A contact at ACME."""
    with crm.unit_of_work(actor=seller, source="test") as uow:
        return contacts.create(uow, {"first_name": "Ada", "last_name": "Kowalska",
                                     "customer_id": acme.id})


@pytest.fixture
def deal(crm: Any, seller: Any, acme: Any) -> Any:
    """An open deal with ACME."""
    with crm.unit_of_work(actor=seller, source="test") as uow:
        return opportunities.create(uow, {"name": "Tools 2027", "customer_id": acme.id})


# -- the service ------------------------------------------------------------------------------


def test_an_activity_is_the_actors_and_takes_the_customer_of_its_deal_or_contact(
    crm, seller, acme, ada, deal
):
    by_deal = _plan(crm, seller, kind="meeting", opportunity_id=deal.id)
    assert by_deal.assignee_id == seller.id and by_deal.customer_id == acme.id
    assert by_deal.kind == "meeting" and by_deal.done_at is None
    by_contact = _plan(crm, seller, contact_id=ada.id)
    assert by_contact.customer_id == acme.id and by_contact.kind == "todo"
    with crm.session_factory() as session:
        entry = session.scalars(select(AuditEntry).where(
            AuditEntry.entity == "activity", AuditEntry.entity_id == str(by_deal.id))).one()
        assert entry.action == "created" and entry.changes["opportunity_id"] == [None, deal.id]
        assert session.scalar(select(OutboxEvent.type).where(
            OutboxEvent.entity_id == str(by_deal.id), OutboxEvent.entity == "activity"
        )) == "activity.created"


def test_bad_input_names_the_fields_and_nothing_is_written(crm, seller, acme, ada):
    other = make_user(crm, "gone@sales.example")
    with crm.unit_of_work(source="test") as uow:
        uow.session.get(type(other), other.id).active = False
    with crm.unit_of_work(actor=seller, source="test") as uow:
        elsewhere = customers.create(uow, {"name": "Elsewhere Ltd"})
    cases = [
        ({"subject": "", "kind": "lunch", "due_at": "tomorrow"}, {"subject", "kind", "due_at"}),
        ({"subject": "X"}, {"due_at"}),
        ({"subject": "X", "due_at": "2026-12-02T10:00:00"}, {"due_at"}),  # no time zone
        ({"subject": "X", "due_at": _at(days=1), "reminder_at": _at(days=2)}, {"reminder_at"}),
        ({"subject": "X", "due_at": _at(days=1), "assignee_id": other.id}, {"assignee_id"}),
        ({"subject": "X", "due_at": _at(days=1), "assignee_id": 999999}, {"assignee_id"}),
        ({"subject": "X", "due_at": _at(days=1), "customer_id": 999999}, {"customer_id"}),
        ({"subject": "X", "due_at": _at(days=1), "contact_id": 999999}, {"contact_id"}),
        ({"subject": "X", "due_at": _at(days=1), "opportunity_id": 999999}, {"opportunity_id"}),
        ({"subject": "X", "due_at": _at(days=1), "customer_id": elsewhere.id,
          "contact_id": ada.id}, {"contact_id"}),
        ({"subject": "X\x00", "due_at": _at(days=1)}, {"subject"}),
        ({"subject": "X", "due_at": _at(days=1), "customer_id": "1"}, {"customer_id"}),
    ]
    for data, fields in cases:
        with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=seller) as uow:
            activities.create(uow, data)
        assert set(refused.value.messages) == fields, (data, refused.value.messages)
    assert _count(crm, Activity) == 0
    assert _count(crm, AuditEntry, AuditEntry.entity == "activity") == 0


def test_updates_check_the_stored_values_and_stale_versions(crm, seller, acme, deal):
    activity = _plan(crm, seller, due_at=_at(days=2), opportunity_id=deal.id)
    with crm.unit_of_work(actor=seller, source="test") as uow:
        with pytest.raises(ValidationError) as refused:
            activities.update(uow, activity.id, {"reminder_at": _at(days=3)})
        assert set(refused.value.messages) == {"reminder_at"}
        seen = activities.version(activities.get(uow, activity.id))
        changed = activities.update(uow, activity.id, {"reminder_at": _at(days=1),
                                                        "subject": "Demo"},
                                    expected_version=seen)
        assert changed.subject == "Demo" and changed.customer_id == acme.id
    with crm.unit_of_work(actor=seller, source="test") as uow:
        other = customers.create(uow, {"name": "Other GmbH"})
        with pytest.raises(ValidationError) as refused:
            activities.update(uow, activity.id, {"customer_id": other.id})
        assert set(refused.value.messages) == {"opportunity_id"}  # the deal is ACME's
        with pytest.raises(ValidationError):
            activities.update(uow, activity.id, {"assignee_id": None})
    from crm_core import ConflictError

    with pytest.raises(ConflictError), crm.unit_of_work(actor=seller) as uow:
        activities.update(uow, activity.id, {"subject": "Late"}, expected_version=seen)


def test_users_see_the_activities_of_the_users_they_may_see(crm, seller):
    own = make_user(crm, "own@sales.example", ACTIVITY_PERMISSIONS, visibility="own")
    mine = _plan(crm, own, subject="Mine")
    theirs = _plan(crm, seller, subject="Theirs")
    with crm.unit_of_work(actor=own, source="test") as uow:
        assert activities.get(uow, mine.id).subject == "Mine"
        with pytest.raises(NotFoundError):
            activities.get(uow, theirs.id)
        with pytest.raises(NotFoundError):
            activities.update(uow, theirs.id, {"subject": "Hijacked"})
        assert activities.list_for_user(uow, seller.id) == []
    nobody = make_user(crm, "nobody@sales.example", ["customer.view"])
    with pytest.raises(PermissionDenied), crm.unit_of_work(actor=nobody) as uow:
        activities.get(uow, mine.id)


def test_the_users_list_is_open_first_by_due_date_by_keyset(crm, seller):
    late = _plan(crm, seller, subject="Late", due_at=_at(days=-2))
    soon = _plan(crm, seller, subject="Soon", due_at=_at(hours=2))
    later = _plan(crm, seller, subject="Later", due_at=_at(days=3))
    done = _plan(crm, seller, subject="Done", due_at=_at(days=1))
    with crm.unit_of_work(actor=seller, source="test") as uow:
        activities.complete(uow, done.id)
        first = activities.list_for_user(uow, seller.id, limit=2)
        assert [a.subject for a in first] == ["Late", "Soon"]
        rest = activities.list_for_user(uow, seller.id, after=(first[-1].due_at, first[-1].id))
        assert [a.id for a in rest] == [later.id]
        assert [a.id for a in activities.list_for_user(uow, seller.id, done=True)] == [done.id]
        assert activities.count_open(uow, seller.id, due_before=utcnow()) == 1
        assert [a.id for a in activities.list_for_user(uow, seller.id, kind="todo",
                                                       due_before=utcnow())] == [late.id]
    assert soon.id != late.id


# -- completing -------------------------------------------------------------------------------


def test_completing_a_call_logs_it_on_the_customers_timeline_once(crm, client, seller, acme, ada):
    call = _plan(crm, seller, kind="call", subject="Ask about the tender", contact_id=ada.id)
    with crm.unit_of_work(actor=seller, source="test") as uow:
        done = activities.complete(uow, call.id, "They will order in March.")
        assert done.done_at is not None and done.interaction_id is not None
        logged = uow.session.get(Interaction, done.interaction_id)
        assert (logged.channel, logged.subject, logged.body) == (
            "call", "Ask about the tender", "They will order in March.")
        assert (logged.customer_id, logged.contact_id, logged.user_id) == (
            acme.id, ada.id, seller.id)
    with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=seller) as uow:
        activities.complete(uow, call.id, "again")
    assert "done_at" in refused.value.messages
    assert _count(crm, Interaction) == 1
    ui_user(crm, REP)
    page = UiBrowser(client, REP).get(f"/customers/{acme.id}")
    assert "Ask about the tender" in page and "They will order in March." in page


def test_what_completing_logs_depends_on_the_kind_and_the_customer(crm, seller, acme):
    todo = _plan(crm, seller, subject="Send the price list", customer_id=acme.id)
    loose = _plan(crm, seller, kind="call", subject="Call a stranger")
    with crm.unit_of_work(actor=seller, source="test") as uow:
        first = activities.complete(uow, todo.id).interaction_id
        assert uow.session.get(Interaction, first).channel == "note"
        assert activities.complete(uow, loose.id).interaction_id is None
        reopened = activities.reopen(uow, todo.id)
        assert reopened.done_at is None and reopened.interaction_id is None
        with pytest.raises(ValidationError):
            activities.reopen(uow, todo.id)
        again = activities.complete(uow, todo.id)
        assert again.interaction_id not in (None, first)


def test_completing_without_the_right_to_log_interactions_writes_nothing(crm, seller, acme):
    clerk = make_user(crm, "clerk@sales.example", ACTIVITY_PERMISSIONS)
    call = _plan(crm, clerk, kind="call", customer_id=acme.id)
    with pytest.raises(PermissionDenied), crm.unit_of_work(actor=clerk) as uow:
        activities.complete(uow, call.id)
    with crm.session_factory() as session:
        assert session.get(Activity, call.id).done_at is None
    assert _count(crm, Interaction) == 0


# -- reminders --------------------------------------------------------------------------------


def test_the_reminder_job_emits_one_event_per_due_activity_once(crm, seller):
    job = crm.registry.jobs["crm_sales.activity_reminders"]
    assert job.schedule
    due = [_plan(crm, seller, subject=f"Due {n}", reminder_at=_at(minutes=-n - 1),
                 due_at=_at(hours=1)) for n in range(3)]
    _plan(crm, seller, subject="Later", reminder_at=_at(hours=1), due_at=_at(hours=2))
    _plan(crm, seller, subject="No reminder")
    finished = _plan(crm, seller, subject="Finished", reminder_at=_at(minutes=-5),
                     due_at=_at(hours=1))
    with crm.unit_of_work(actor=seller, source="test") as uow:
        activities.complete(uow, finished.id)
    job.func(crm)
    job.func(crm)
    assert activities.send_reminders(crm) == 0
    with crm.session_factory() as session:
        events = session.execute(
            select(OutboxEvent.entity_id, OutboxEvent.payload)
            .where(OutboxEvent.type == "activity.reminder_due")
        ).all()
        reminded = set(session.scalars(
            select(Activity.id).where(Activity.reminded_at.is_not(None))))
    assert sorted(int(ident) for ident, _payload in events) == sorted(a.id for a in due)
    assert reminded == {a.id for a in due}
    assert {payload["subject"] for _ident, payload in events} == {"Due 0", "Due 1", "Due 2"}
    with crm.unit_of_work(actor=seller, source="test") as uow:  # a new time reminds again
        activities.update(uow, due[0].id, {"reminder_at": _at(minutes=-1)})
        activities.update(uow, due[1].id, {"subject": "Due 1, renamed"})
    assert activities.send_reminders(crm) == 1


# -- the API ----------------------------------------------------------------------------------


@pytest.fixture
def api(crm: Any, client: Any, seller: Any) -> ApiClient:
    """The API as the seller (every permission)."""
    return ApiClient(client, api_token(crm, seller))


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return response.get_json(force=True)  # type: ignore[no-any-return]


def test_the_api_creates_reads_changes_completes_and_deletes(crm, api, acme, deal):
    created = api.post("/activities", json={
        "kind": "call", "subject": "Kick-off", "due_at": _at(days=1),
        "opportunity_id": deal.id,
    })
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["customer_id"] == acme.id and body["done_at"] is None
    assert created.headers["ETag"] == f'"{body["version"]}"'
    location = created.headers["Location"]
    read = api.get(location)
    assert read.status_code == 200 and read.get_json()["subject"] == "Kick-off"
    _problem(api.patch(location, json={"subject": "Kick-off call"}), 428)
    changed = api.patch(location, json={"subject": "Kick-off call"},
                        headers={"If-Match": read.headers["ETag"]})
    assert changed.status_code == 200 and changed.get_json()["subject"] == "Kick-off call"
    _problem(api.patch(location, json={"subject": "Stale"},
                       headers={"If-Match": read.headers["ETag"]}), 412)
    done = api.post(f"/sales/activities/{body['id']}/complete",
                    json={"outcome_note": "Went well."})
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["done_at"] and done.get_json()["interaction_id"]
    again = _problem(api.post(f"/sales/activities/{body['id']}/complete"), 422)
    assert "done_at" in again["errors"]
    assert api.get("/activities", query_string={"done": "true"}).get_json()["data"][0][
        "id"] == body["id"]
    assert api.get("/activities", query_string={"done": "false"}).get_json()["data"] == []
    reopened = api.post(f"/sales/activities/{body['id']}/reopen")
    assert reopened.status_code == 200 and reopened.get_json()["done_at"] is None
    history = api.get(f"/activities/{body['id']}/history").get_json()["data"]
    assert [entry["action"] for entry in history] == [
        "reopened", "completed", "updated", "created"]
    _problem(api.delete(location, headers={"If-Match": read.headers["ETag"]}), 412)
    deleted = api.delete(location, headers={"If-Match": reopened.headers["ETag"]})
    assert deleted.status_code == 204
    _problem(api.get(location), 404)
    with crm.session_factory() as session:
        assert session.scalar(select(AuditEntry.action).where(
            AuditEntry.entity == "activity").order_by(AuditEntry.id.desc())) == "deleted"


def test_the_api_refuses_bad_input_with_the_fields(crm, api, acme):
    refused = _problem(api.post("/activities", json={
        "subject": "", "due_at": "soon", "customer_id": 999999, "kind": "lunch"}), 422)
    assert {"subject", "due_at", "kind"} <= set(refused["errors"])
    refused = _problem(api.post("/activities", json={
        "subject": "X", "due_at": _at(days=1), "reminder_at": _at(days=2),
        "customer_id": 999999}), 422)
    assert set(refused["errors"]) == {"reminder_at", "customer_id"}
    _problem(api.post("/sales/activities/999999/complete"), 404)
    _problem(api.post("/sales/activities/abc/complete"), 404)
    _problem(api.get("/activities", query_string={"done": "maybe"}), 400)
    created = api.post("/activities", json={"subject": "X", "due_at": _at(days=1)}).get_json()
    bad_note = _problem(api.post(f"/sales/activities/{created['id']}/complete",
                                 json={"outcome_note": 5}), 422)
    assert "outcome_note" in bad_note["errors"]
    unknown = _problem(api.post(f"/sales/activities/{created['id']}/complete",
                                json={"note": "x"}), 422)
    assert "note" in unknown["errors"]
    _problem(api.post(f"/sales/activities/{created['id']}/complete", data="x",
                      content_type="text/plain"), 415)
    assert _count(crm, Activity) == 1
    assert _count(crm, Interaction) == 0


def test_the_api_follows_permissions_and_visibility(crm, client, seller, acme):
    theirs = _plan(crm, seller, subject="The seller's")
    rep = make_user(crm, "own-api@sales.example", ACTIVITY_PERMISSIONS, visibility="own")
    mine = _plan(crm, rep, subject="Mine")
    as_rep = ApiClient(client, api_token(crm, rep))
    listed = as_rep.get("/activities").get_json()["data"]
    assert [item["id"] for item in listed] == [mine.id]
    assert as_rep.get("/activities", query_string={"assignee_id": seller.id}).get_json()[
        "data"] == []
    _problem(as_rep.get(f"/activities/{theirs.id}"), 404)
    _problem(as_rep.post(f"/sales/activities/{theirs.id}/complete"), 404)
    reader = make_user(crm, "reader@sales.example", ["sales.activity.view"])
    as_reader = ApiClient(client, api_token(crm, reader))
    assert as_reader.get(f"/activities/{theirs.id}").status_code == 200
    _problem(as_reader.post("/activities", json={"subject": "X", "due_at": _at(days=1)}), 403)
    _problem(as_reader.post(f"/sales/activities/{theirs.id}/complete"), 403)
    stranger = make_user(crm, "stranger@sales.example", ["customer.view"])
    _problem(ApiClient(client, api_token(crm, stranger)).get("/activities"), 403)
    _problem(ApiClient(client, None).post(f"/sales/activities/{theirs.id}/complete"), 401)
    assert _count(crm, Activity, Activity.done_at.is_not(None)) == 0


def test_the_openapi_document_describes_activities(app, client):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. apispec's "Multiple schemas resolved to the name"
        build_openapi(app)
    document = client.get("/api/v1/openapi.json").get_json()
    schemathesis.openapi.from_dict(document).validate()
    complete = document["paths"]["/sales/activities/{record_id}/complete"]["post"]
    assert {"200", "403", "404", "412", "422"} <= set(complete["responses"])
    assert "/sales/activities/{record_id}/reopen" in document["paths"]
    names = {p["name"] for p in document["paths"]["/activities"]["get"]["parameters"]}
    assert {"assignee_id", "opportunity_id", "customer_id", "done"} <= names


#: Generated requests per operation and mode (``CRM_SCHEMATHESIS_EXAMPLES`` fuzzes deeper).
MAX_EXAMPLES = int(os.environ.get("CRM_SCHEMATHESIS_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


def test_schemathesis_finds_no_server_error_in_the_activity_operations(app, api, acme):
    target = api.post("/activities", json={"subject": "Fuzzed", "due_at": _at(days=1),
                                           "customer_id": acme.id}).get_json()
    auth = {"Authorization": f"Bearer {api.token}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    ours = [op for op in operations if op.path.startswith(("/activities", "/sales/activities/"))]
    assert len(ours) >= 8
    failures: list[str] = []
    runs = ((schemathesis.GenerationMode.POSITIVE, False),
            (schemathesis.GenerationMode.NEGATIVE, False),
            (schemathesis.GenerationMode.POSITIVE, True))
    for operation in ours:
        for mode, existing in runs:
            if existing and "{record_id}" not in operation.path:
                continue
            try:
                _fuzz(operation, mode, app.test_client(), auth,
                      target["id"] if existing else None)
            except Exception as exc:
                failures.append(f"{operation.label} ({mode.value}, existing={existing}):\n{exc}")
    assert not failures, "\n\n".join(failures)


def _fuzz(operation: Any, mode: Any, client: Any, auth: dict[str, str],
          record_id: int | None) -> None:
    """Up to :data:`MAX_EXAMPLES` generated requests; with ``record_id``, aimed at that
    activity with its current ``ETag`` where ``If-Match`` is taken."""

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                         database=None, phases=[Phase.explicit, Phase.generate],
                         suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        if record_id is not None:
            case.path_parameters = {**(case.path_parameters or {}), "record_id": record_id}
            if case.headers and "If-Match" in case.headers:
                current = client.get(f"/api/v1/activities/{record_id}", headers=auth)
                case.headers["If-Match"] = current.headers.get("ETag", '"0"')
        case.call_and_validate(headers=auth, checks=CHECKS)

    run()


# -- the pages --------------------------------------------------------------------------------


@pytest.fixture
def rep(crm: Any, client: Any) -> UiBrowser:
    """The UI as a user holding every permission."""
    ui_user(crm, REP)
    return UiBrowser(client, REP)


def _rep(crm: Any) -> Any:
    with crm.session_factory() as session:
        return session.scalars(select(User).where(User.email == REP)).one()


def _user_id(crm: Any, email: str) -> int:
    with crm.session_factory() as session:
        return session.scalars(select(User.id).where(User.email == email)).one()


def test_my_activities_shows_overdue_today_upcoming_and_done(crm, rep, acme, deal):
    user = _rep(crm)
    _plan(crm, user, subject="Overdue call", kind="call", due_at=_at(days=-1),
          customer_id=acme.id)
    _plan(crm, user, subject="Next week", due_at=_at(days=7), opportunity_id=deal.id)
    finished = _plan(crm, user, subject="Finished", due_at=_at(days=-2))
    with crm.unit_of_work(actor=user, source="test") as uow:
        activities.complete(uow, finished.id)
    page = rep.get("/sales/activities")
    assert '<a href="/sales/activities" aria-current="page">Activities</a>' in page
    overdue = page[page.index('id="group-overdue"'):page.index('id="group-upcoming"')]
    assert "Overdue call" in overdue and 'class="overdue' in overdue
    assert "ACME Tools GmbH" in overdue
    upcoming = page[page.index('id="group-upcoming"'):page.index('id="group-done"')]
    assert "Next week" in upcoming and "Tools 2027" in upcoming
    assert "Finished" in page[page.index('id="group-done"'):]
    assert 'name="outcome_note"' in page and 'name="csrf_token"' in page
    filtered = rep.get("/sales/activities?kind=call")
    assert "Overdue call" in filtered and "Next week" not in filtered
    rep.get("/sales/activities?kind=lunch", status=400)
    rep.get("/sales/activities?cursor=nonsense", status=400)
    end_of_day = activities_today_end()
    if end_of_day - utcnow() > dt.timedelta(minutes=30):
        _plan(crm, user, subject="Later today",
              due_at=(utcnow() + (end_of_day - utcnow()) / 2).isoformat())
        page = rep.get("/sales/activities")
        today = page[page.index('id="group-today"'):page.index('id="group-upcoming"')]
        assert "Later today" in today


def activities_today_end() -> dt.datetime:
    """The end of today in the installation's time zone (UTC in the tests)."""
    now = utcnow()
    return now.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)


def test_the_done_button_completes_and_logs_and_a_second_time_is_refused(crm, rep, acme):
    call = _plan(crm, _rep(crm), kind="call", subject="Call the buyer", customer_id=acme.id)
    response = rep.post(f"/sales/activities/{call.id}/done",
                        {"outcome_note": "Ordered 10 licences.", "next": "/sales/activities"})
    assert response.headers["Location"].endswith("/sales/activities")
    assert "logged on the customer" in html.unescape(rep.get("/sales/activities"))
    with crm.session_factory() as session:
        stored = session.get(Activity, call.id)
        assert stored.done_at is not None
        assert session.get(Interaction, stored.interaction_id).body == "Ordered 10 licences."
    timeline = rep.get(f"/customers/{acme.id}")
    assert "Call the buyer" in timeline and "Ordered 10 licences." in timeline
    again = rep.post(f"/sales/activities/{call.id}/done", {"outcome_note": "x"}, status=422)
    assert "This activity is done already." in again.get_data(as_text=True)
    external = rep.post(f"/sales/activities/{call.id}/reopen", {"next": "//evil.example/"})
    assert external.headers["Location"].endswith("/sales/activities")
    assert _count(crm, Interaction) == 1


def test_the_form_preselects_and_shows_messages_beside_the_fields(crm, rep, acme, deal):
    form = rep.get(f"/sales/activities/new?customer_id={acme.id}&opportunity_id={deal.id}")
    assert f'name="customer_id" type="number" value="{acme.id}"' in form
    assert f'name="opportunity_id" type="number" value="{deal.id}"' in form
    assert "ACME Tools GmbH" in form and "Tools 2027" in form
    refused = rep.post("/sales/activities/new", {
        "kind": "call", "subject": "", "due_at": "not a date", "customer_id": str(acme.id),
    }, status=422).get_data(as_text=True)
    assert 'id="due_at-errors"' in refused and "Give a date and time" in refused
    refused = rep.post("/sales/activities/new", {
        "kind": "call", "subject": "", "due_at": "2026-12-02T10:00",
        "reminder_at": "2026-12-03T10:00", "customer_id": "999999",
        "assignee_id": str(_rep(crm).id),
    }, status=422).get_data(as_text=True)
    for name in ("subject", "reminder_at", "customer_id"):
        assert f'id="{name}-errors"' in refused, name
    assert "Must not be empty." in refused and "No such customer." in refused
    assert 'value="2026-12-03T10:00"' in refused  # what was typed comes back
    assert _count(crm, Activity) == 0
    created = rep.post("/sales/activities/new", {
        "kind": "meeting", "subject": "Workshop", "due_at": "2030-01-15T09:30",
        "opportunity_id": str(deal.id), "assignee_id": str(_rep(crm).id),
        "next": f"/customers/{acme.id}",
    })
    assert created.headers["Location"].endswith(f"/customers/{acme.id}")
    with crm.session_factory() as session:
        stored = session.scalars(select(Activity)).one()
    assert (stored.kind, stored.customer_id) == ("meeting", acme.id)
    assert stored.due_at == dt.datetime(2030, 1, 15, 9, 30, tzinfo=dt.UTC)
    panel = rep.get(f"/customers/{acme.id}")
    assert "Next activities" in panel and "Workshop" in panel and "Plan an activity" in panel


def test_the_edit_form_saves_refuses_and_notices_a_stale_version(crm, rep, acme):
    activity = _plan(crm, _rep(crm), subject="Prepare the offer", due_at=_at(days=2))
    form = rep.get(f"/sales/activities/{activity.id}/edit")
    assert 'value="Prepare the offer"' in form
    version = form.split('name="version" value="')[1].split('"')[0]
    due = form.split('name="due_at" type="datetime-local" value="')[1].split('"')[0]
    fields = {"kind": "todo", "subject": "Prepare the offer", "due_at": due,
              "assignee_id": str(_rep(crm).id), "version": version}
    refused = rep.post(f"/sales/activities/{activity.id}/edit",
                       {**fields, "subject": "", "contact_id": "999999"}, status=422)
    assert 'id="contact_id-errors"' in refused.get_data(as_text=True)
    rep.post(f"/sales/activities/{activity.id}/edit", {**fields, "subject": "Send the offer"})
    stale = rep.post(f"/sales/activities/{activity.id}/edit",
                     {**fields, "subject": "Mine"}, status=409).get_data(as_text=True)
    assert "Send the offer" in stale and "Mine" in stale
    with crm.session_factory() as session:
        assert session.get(Activity, activity.id).subject == "Send the offer"
    rep.post(f"/sales/activities/{activity.id}/delete", {})
    assert _count(crm, Activity) == 0


def test_pages_need_the_permissions_and_hide_others_activities(crm, client, seller):
    theirs = _plan(crm, seller, subject="Secret")
    ui_user(crm, "viewer@sales.example", ["sales.activity.view", "customer.view"],
            visibility="own")
    viewer = UiBrowser(client, "viewer@sales.example")
    assert "Secret" not in viewer.get("/sales/activities")
    viewer.get(f"/sales/activities/{theirs.id}/edit", status=404)
    viewer.get("/sales/activities/new", status=403)
    viewer.post(f"/sales/activities/{theirs.id}/done", {}, status=403)
    viewer_id = _user_id(crm, "viewer@sales.example")
    assigned = _plan(crm, seller, subject="For the viewer", assignee_id=viewer_id)
    read_only = viewer.get(f"/sales/activities/{assigned.id}/edit")
    assert "For the viewer" in read_only and 'name="subject"' not in read_only
    viewer.post(f"/sales/activities/{assigned.id}/edit", {"subject": "Changed"}, status=403)
    ui_user(crm, "outsider@sales.example", ["customer.view"])
    outsider = UiBrowser(client.application.test_client(), "outsider@sales.example")
    outsider.get("/sales/activities", status=403)
    assert "/sales/activities" not in outsider.get("/")


def test_the_dashboard_lists_my_overdue_and_todays_tasks(crm, rep):
    user = _rep(crm)
    _plan(crm, user, subject="Chase the invoice", due_at=_at(hours=-3))
    _plan(crm, user, subject="Next month", due_at=_at(days=30))
    page = rep.get("/")
    widget = page[page.index("widget-sales-my-tasks"):]
    assert "My tasks (1)" in widget
    assert "Overdue:" in widget and "Chase the invoice" in widget
    assert "Next month" not in widget


def test_the_list_page_runs_the_same_queries_for_few_and_many_activities(crm, rep, acme, ada,
                                                                          deal):
    user = _rep(crm)

    def plan(count: int, offset: int) -> None:
        for n in range(count):
            _plan(crm, user, subject=f"Task {offset + n}", due_at=_at(hours=offset + n - 20),
                  contact_id=ada.id, opportunity_id=deal.id)

    plan(2, 0)
    with sql_statements(crm) as few:
        rep.get("/sales/activities")
    plan(60, 100)
    with sql_statements(crm) as many:
        page = rep.get("/sales/activities")
    assert len(many) == len(few), (few, many)
    assert page.count('class="done-form"') == 50
    second = rep.get(link_of(page))
    assert second.count('class="done-form"') == 12 and "First page" in second
