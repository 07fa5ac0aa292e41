"""``/api/v1/nps-surveys``: list, read, send, record an answer, withdraw; 422 and 401."""

from __future__ import annotations

from crm_core.testing import make_interaction

#: The resource, under ``/api/v1``.
SURVEYS = "/nps-surveys"


def test_the_hooks_surveys_are_listed_and_read(api, customer, survey):
    listed = api.get(SURVEYS, query_string={"customer_id": customer.id})
    assert listed.status_code == 200
    data = listed.get_json()["data"]
    assert [(s["id"], s["interaction_id"], s["token"]) for s in data] == [
        (survey.id, survey.interaction_id, survey.token)]
    read = api.get(f"{SURVEYS}/{survey.id}")
    assert read.status_code == 200
    assert read.get_json()["score"] is None and read.headers["ETag"] == '"1"'
    by_interaction = api.get(SURVEYS, query_string={"interaction_id": survey.interaction_id})
    assert [s["id"] for s in by_interaction.get_json()["data"]] == [survey.id]


def test_staff_send_a_survey_for_another_interaction(crm, api, editor, customer):
    note = make_interaction(crm, actor=editor, customer_id=customer.id, channel="note")
    created = api.post(SURVEYS, json={"interaction_id": note.id})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["customer_id"] == customer.id and len(body["token"]) >= 40
    again = api.post(SURVEYS, json={"interaction_id": note.id})
    assert again.status_code == 422
    assert set(again.get_json()["errors"]) == {"interaction_id"}


def test_an_answer_given_on_the_phone_is_recorded_with_if_match(api, survey):
    path = f"{SURVEYS}/{survey.id}"
    refused = api.patch(path, json={"score": 12}, headers={"If-Match": '"1"'})
    assert refused.status_code == 422
    assert set(refused.get_json()["errors"]) == {"score"}
    answered = api.patch(path, json={"score": 8, "comment": "Said so on the phone"},
                         headers={"If-Match": '"1"'})
    assert answered.status_code == 200, answered.get_json()
    body = answered.get_json()
    assert (body["score"], body["comment"]) == (8, "Said so on the phone")
    assert body["answered_at"] is not None
    stale = api.patch(path, json={"score": 9}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412


def test_a_survey_is_withdrawn_with_delete(api, survey):
    path = f"{SURVEYS}/{survey.id}"
    assert api.delete(path, headers={"If-Match": '"1"'}).status_code == 204
    assert api.get(path).get_json()["archived"] is True
    assert api.get(SURVEYS).get_json()["data"] == []
    history = api.get(f"{path}/history").get_json()["data"]
    assert [entry["action"] for entry in history] == ["archived", "created"]


def test_the_resource_needs_a_token(client):
    assert client.get(f"/api/v1{SURVEYS}").status_code == 401
