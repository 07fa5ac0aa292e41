"""The customer 360 endpoints: timeline, search, duplicates, merge and undo, history.

Through the Flask test client with real tokens, on SQLite and PostgreSQL; the library
functions behind them have their own tests (test_timeline, test_search...).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from crm_core.testing import ApiClient, api_token, make_user

pytestmark = pytest.mark.plugins()

T0 = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)


def problem(response: Any, status: int) -> dict[str, Any]:
    """Assert ``response`` is a problem document with ``status``; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    return response.get_json(force=True)


def create(api: ApiClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(path, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def acme(api: ApiClient) -> dict[str, Any]:
    """A customer with a contact and five interactions an hour apart, on two channels."""
    customer = create(api, "/customers", {"name": "Acme Tools", "email": "info@acme.example"})
    contact = create(api, "/contacts", {"customer_id": customer["id"], "last_name": "Roadrunner"})
    calls = []
    for hour in range(5):
        calls.append(
            create(
                api,
                "/interactions",
                {
                    "customer_id": customer["id"],
                    "contact_id": contact["id"],
                    "channel": "call" if hour % 2 == 0 else "email",
                    "direction": "in",
                    "subject": f"Touch {hour}",
                    "occurred_at": (T0 + dt.timedelta(hours=hour)).isoformat(),
                },
            )
        )
    return {"customer": customer, "contact": contact, "interactions": calls}


# -- timeline ----------------------------------------------------------------------------------


def test_the_timeline_is_newest_first_and_pages_without_gaps_or_repeats(api, acme):
    customer_id = acme["customer"]["id"]
    entries = api.collect(f"/customers/{customer_id}/timeline", query_string={"limit": 2})
    assert [entry["title"] for entry in entries] == [f"Touch {h}" for h in (4, 3, 2, 1, 0)]
    assert {entry["type"] for entry in entries} == {"interaction"}
    first = entries[0]
    assert first["channel"] == "call"
    assert first["extra"]["contact_id"] == acme["contact"]["id"]
    assert dt.datetime.fromisoformat(first["occurred_at"]) == T0 + dt.timedelta(hours=4)


def test_the_timeline_filters_by_channel_and_type(api, acme):
    customer_id = acme["customer"]["id"]
    calls = api.get(f"/customers/{customer_id}/timeline", query_string={"channel": "call"})
    assert [e["title"] for e in calls.get_json()["data"]] == ["Touch 4", "Touch 2", "Touch 0"]
    both = api.get(f"/customers/{customer_id}/timeline", query_string={"channel": "call,email"})
    assert len(both.get_json()["data"]) == 5
    none = api.get(f"/customers/{customer_id}/timeline", query_string={"type": "sales.deal"})
    assert none.get_json() == {"data": [], "next": None}


def test_the_timeline_refuses_bad_cursors_and_hides_unseen_customers(api, client, crm, acme):
    customer_id = acme["customer"]["id"]
    bad = api.get(f"/customers/{customer_id}/timeline", query_string={"cursor": "nonsense"})
    assert "cursor" in problem(bad, 400)["errors"]
    problem(api.get("/customers/999999/timeline"), 404)
    own = make_user(crm, "own@t360.example", ["customer.view"], visibility="own")
    outsider = ApiClient(client, api_token(crm, own))
    problem(outsider.get(f"/customers/{customer_id}/timeline"), 404)


# -- search --------------------------------------------------------------------------------------


def test_the_global_search_finds_names_by_prefix_emails_and_typos(api, acme):
    by_prefix = api.get("/search", query_string={"q": "acm"}).get_json()["data"]
    assert by_prefix[0]["entity"] == "customer"
    assert by_prefix[0]["id"] == acme["customer"]["id"]
    by_email = api.get("/search", query_string={"q": "info@acme.example"}).get_json()["data"]
    assert by_email[0]["score"] == 1.0
    typo = api.get("/search", query_string={"q": "Roadruner"}).get_json()["data"]
    assert [(hit["entity"], hit["id"]) for hit in typo] == [("contact", acme["contact"]["id"])]
    only_contacts = api.get("/search", query_string={"q": "acme", "entity": "contact"})
    assert {hit["entity"] for hit in only_contacts.get_json()["data"]} == {"contact"}


def test_the_global_search_refuses_bad_parameters(api):
    assert "q" in problem(api.get("/search"), 400)["errors"]
    assert "q" in problem(api.get("/search", query_string={"q": "  "}), 400)["errors"]
    unknown = api.get("/search", query_string={"q": "x", "entity": "planet"})
    assert "entity" in problem(unknown, 400)["errors"]
    assert "limit" in problem(api.get("/search", query_string={"q": "x", "limit": 51}), 400)[
        "errors"
    ]


def test_q_filters_keyset_paginated_lists(api):
    for name in ("Globex One", "Globex Two", "Globex Three", "Initech"):
        create(api, "/customers", {"name": name})
    found = api.collect("/customers", query_string={"q": "glob", "limit": 2})
    assert [c["name"] for c in found] == ["Globex One", "Globex Three", "Globex Two"]
    assert api.collect("/customers", query_string={"q": "globex tw"})[0]["name"] == "Globex Two"
    assert len(api.collect("/customers", query_string={"q": ""})) == 4


@pytest.mark.parametrize("sparse_matches", [1, 2000])
def test_q_gives_the_same_pages_whether_matches_are_few_or_many(api, monkeypatch, sparse_matches):
    monkeypatch.setattr("crm_core.search.SPARSE_MATCHES", sparse_matches)
    for name, email in (("Globex One", "one@globex.example"), ("Globex Two", None),
                        ("Hooli", "globex@hooli.example"), ("Initech", None)):
        create(api, "/customers", {"name": name, "email": email})
    found = api.collect("/customers", query_string={"q": "globex", "limit": 1})
    assert [c["name"] for c in found] == ["Globex One", "Globex Two", "Hooli"]
    exact = api.collect("/customers", query_string={"q": "one@globex.example"})
    assert [c["name"] for c in exact] == ["Globex One"]
    assert api.collect("/customers", query_string={"q": "nothing-like-it"}) == []


# -- duplicates, merge, undo -------------------------------------------------------------------


@pytest.fixture
def twins(api: ApiClient, acme: dict[str, Any]) -> dict[str, Any]:
    """A second Acme (same email, name spelled differently) with a contact and a call."""
    twin = create(api, "/customers", {"name": "ACME Tools GmbH", "email": "INFO@acme.example",
                                      "city": "Berlin"})
    contact = create(api, "/contacts", {"customer_id": twin["id"], "last_name": "Coyote"})
    call = create(
        api,
        "/interactions",
        {"customer_id": twin["id"], "channel": "call", "direction": "out",
         "occurred_at": T0.isoformat()},
    )
    return {**acme, "twin": twin, "twin_contact": contact, "twin_call": call}


def test_duplicates_are_suggested_with_reasons_and_the_record(api, twins):
    response = api.get(f"/customers/{twins['customer']['id']}/duplicates")
    assert response.status_code == 200
    [suggestion] = response.get_json()["data"]
    assert suggestion["id"] == twins["twin"]["id"]
    assert "email" in suggestion["reasons"] and "name" in suggestion["reasons"]
    assert 0 < suggestion["score"] <= 1
    assert suggestion["record"]["city"] == "Berlin"


def test_a_merge_moves_everything_and_can_be_undone_exactly(api, twins):
    survivor_id, twin_id = twins["customer"]["id"], twins["twin"]["id"]
    url = f"/customers/{survivor_id}/merge"
    body = {"duplicate_ids": [twin_id], "field_sources": {"name": twin_id}}
    problem(api.post(url, json=body), 428)
    problem(api.post(url, json=body, headers={"If-Match": '"99"'}), 412)
    etag = api.get(f"/customers/{survivor_id}").headers["ETag"]
    merged = api.post(url, json=body, headers={"If-Match": etag})
    assert merged.status_code == 200, merged.get_json()
    result = merged.get_json()
    assert result["survivor"]["name"] == "ACME Tools GmbH"
    assert result["survivor"]["city"] == "Berlin"  # empty on the survivor: filled in
    assert result["merged_ids"] == [twin_id]
    assert merged.headers["ETag"] == f'"{result["survivor"]["version"]}"'
    moved = api.collect("/contacts", query_string={"customer_id": survivor_id})
    assert {c["last_name"] for c in moved} == {"Roadrunner", "Coyote"}
    timeline = api.collect(f"/customers/{survivor_id}/timeline")
    assert twins["twin_call"]["id"] in {entry["id"] for entry in timeline}
    twin = api.get(f"/customers/{twin_id}").get_json()
    assert twin["archived"] is True and twin["merged_into_id"] == survivor_id
    history = api.collect(f"/customers/{survivor_id}/history")
    assert history[0]["action"] == "merged" and history[0]["id"] == result["merge_id"]
    assert history[0]["source"] == "api"
    assert history[0]["changes"]["name"] == ["Acme Tools", "ACME Tools GmbH"]

    undone = api.post(result["undo"])
    assert undone.status_code == 200, undone.get_json()
    assert undone.get_json()["survivor"]["name"] == "Acme Tools"
    assert undone.get_json()["survivor"]["city"] is None
    assert [r["id"] for r in undone.get_json()["restored"]] == [twin_id]
    back = api.collect("/contacts", query_string={"customer_id": twin_id})
    assert [c["last_name"] for c in back] == ["Coyote"]
    assert api.get(f"/customers/{twin_id}").get_json()["archived"] is False
    assert api.collect(f"/customers/{survivor_id}/history")[0]["action"] == "merge_undone"
    again = problem(api.post(result["undo"]), 422)
    assert again["errors"]


def test_merge_input_and_undo_targets_are_checked(api, twins):
    survivor_id = twins["customer"]["id"]
    etag = api.get(f"/customers/{survivor_id}").headers["ETag"]
    url = f"/customers/{survivor_id}/merge"
    for body, field in (
        ({}, "duplicate_ids"),
        ({"duplicate_ids": []}, "duplicate_ids"),
        ({"duplicate_ids": ["x"]}, "duplicate_ids"),
        ({"duplicate_ids": [survivor_id]}, "duplicate_ids"),
        ({"duplicate_ids": [twins["twin"]["id"]], "field_sources": {"id": survivor_id}},
         "field_sources"),
    ):
        response = api.post(url, json=body, headers={"If-Match": etag})
        assert field in problem(response, 422)["errors"], body
    problem(api.post(url, json={"duplicate_ids": [2**31 + 5]}, headers={"If-Match": etag}), 422)
    problem(api.post(url, json={"duplicate_ids": [999999]}, headers={"If-Match": etag}), 404)
    problem(api.post(f"/customers/{survivor_id}/merges/1/undo"), 404)
    problem(api.post(f"/customers/{survivor_id}/merges/{2**40}/undo"), 404)


def test_contacts_merge_through_the_api(api, twins):
    survivor = twins["contact"]["id"]
    duplicate = create(api, "/contacts", {"customer_id": twins["customer"]["id"],
                                          "last_name": "Roadrunner", "first_name": "Road"})
    suggestions = api.get(f"/contacts/{survivor}/duplicates").get_json()["data"]
    assert duplicate["id"] in [s["id"] for s in suggestions]
    etag = api.get(f"/contacts/{survivor}").headers["ETag"]
    merged = api.post(f"/contacts/{survivor}/merge", json={"duplicate_ids": [duplicate["id"]]},
                      headers={"If-Match": etag})
    assert merged.status_code == 200, merged.get_json()
    assert merged.get_json()["survivor"]["first_name"] == "Road"
    assert api.post(merged.get_json()["undo"]).status_code == 200


# -- history ---------------------------------------------------------------------------------


def test_history_names_who_changed_which_field_when_and_how(api, client, crm, acme):
    customer_id = acme["customer"]["id"]
    for city in ("Paris", "Lyon", "Nice"):
        etag = api.get(f"/customers/{customer_id}").headers["ETag"]
        changed = api.patch(f"/customers/{customer_id}", json={"city": city},
                            headers={"If-Match": etag})
        assert changed.status_code == 200
    entries = api.collect(f"/customers/{customer_id}/history", query_string={"limit": 2})
    assert [e["action"] for e in entries] == ["updated", "updated", "updated", "created"]
    assert entries[0]["changes"]["city"] == ["Lyon", "Nice"]
    assert entries[2]["changes"]["city"] == [None, "Paris"]
    assert {e["actor_email"] for e in entries} == {"api-admin@example.com"}
    assert {e["source"] for e in entries} == {"api"}

    reader = make_user(crm, "reader@t360.example", ["customer.view"])
    problem(ApiClient(client, api_token(crm, reader)).get(f"/customers/{customer_id}/history"),
            403)
    problem(api.get(f"/customers/{customer_id}/history", query_string={"before_id": "x"}), 400)
    problem(api.get("/customers/999999/history"), 404)


def test_every_resource_has_a_history_users_too(api, acme):
    interaction = acme["interactions"][0]["id"]
    assert api.collect(f"/interactions/{interaction}/history")[0]["action"] == "created"
    assert api.collect(f"/contacts/{acme['contact']['id']}/history")[0]["action"] == "created"
    me = api.get("/users/me").get_json()
    assert api.get(f"/users/{me['id']}/history").status_code == 200
    problem(api.get(f"/users/{2**40}"), 404)
