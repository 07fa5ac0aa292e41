"""The customers' answer page ``/nps/<token>``: no sign-in, CSRF-protected, never a 500."""

from __future__ import annotations

import re

from crm_core.models import AuditEntry
from crm_core.testing import csrf_token_of
from sqlalchemy import select

from crm_nps import services
from crm_nps.models import Survey


def stored(crm, survey_id):
    with crm.unit_of_work(source="test", write=False) as uow:
        return uow.session.get(Survey, survey_id)


def test_the_form_needs_no_sign_in_and_shows_the_scale(client, survey):
    response = client.get(f"/nps/{survey.token}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "How likely are you to recommend us" in page
    for score in range(11):
        assert f'name="score" value="{score}"' in page
    assert 'name="comment"' in page
    assert csrf_token_of(page)


def test_an_answer_is_stored_and_thanked_for(crm, client, survey):
    token = csrf_token_of(client.get(f"/nps/{survey.token}").get_data(as_text=True))
    response = client.post(f"/nps/{survey.token}", data={
        "csrf_token": token, "score": "10", "comment": "Solved in one call."})
    assert response.status_code == 200
    assert "Thank you" in response.get_data(as_text=True)
    answered = stored(crm, survey.id)
    assert (answered.score, answered.comment) == (10, "Solved in one call.")
    with crm.unit_of_work(source="test", write=False) as uow:
        sources = uow.session.scalars(select(AuditEntry.source).where(
            AuditEntry.entity == services.ENTITY, AuditEntry.action == "answered")).all()
    assert sources == ["nps"]


def test_an_answered_survey_says_so_and_keeps_its_answer(crm, client, survey):
    token = csrf_token_of(client.get(f"/nps/{survey.token}").get_data(as_text=True))
    client.post(f"/nps/{survey.token}", data={"csrf_token": token, "score": "4"})
    again = client.get(f"/nps/{survey.token}")
    assert again.status_code == 200
    assert "already answered" in again.get_data(as_text=True)
    repost = client.post(f"/nps/{survey.token}", data={"csrf_token": token, "score": "10"})
    assert repost.status_code == 200
    assert "already answered" in repost.get_data(as_text=True)
    assert stored(crm, survey.id).score == 4


def test_an_unknown_token_gets_a_clear_404(client, survey):
    for path in ("/nps/not-a-token", "/nps/" + "x" * 200, "/nps/%00"):
        response = client.get(path)
        assert response.status_code == 404
        assert "not valid" in response.get_data(as_text=True)
    token = csrf_token_of(client.get(f"/nps/{survey.token}").get_data(as_text=True))
    response = client.post("/nps/not-a-token", data={"csrf_token": token, "score": "7"})
    assert response.status_code == 404


def test_a_withdrawn_survey_is_closed(crm, client, editor, survey):
    with crm.unit_of_work(actor=editor, source="test") as uow:
        services.archive(uow, survey.id)
    response = client.get(f"/nps/{survey.token}")
    assert response.status_code == 410
    assert "closed" in response.get_data(as_text=True)


def test_bad_input_shows_the_form_again_with_the_message(crm, client, survey):
    token = csrf_token_of(client.get(f"/nps/{survey.token}").get_data(as_text=True))
    for data in ({}, {"score": "11"}, {"score": "ten"}):
        response = client.post(f"/nps/{survey.token}", data={"csrf_token": token, **data})
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert "Choose a score from 0 to 10." in page
        assert 'name="score"' in page
    response = client.post(f"/nps/{survey.token}", data={
        "csrf_token": token, "score": "8", "comment": "y" * 2001})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Keep the comment under 2000 characters." in page
    assert re.search(r'value="8" required\s+checked', page), "the chosen score is kept"
    assert stored(crm, survey.id).answered_at is None


def test_a_nul_character_is_refused_not_a_500(crm, client, survey):
    token = csrf_token_of(client.get(f"/nps/{survey.token}").get_data(as_text=True))
    response = client.post(f"/nps/{survey.token}", data={
        "csrf_token": token, "score": "9", "comment": "fine\x00"})
    assert response.status_code == 422
    assert "Must not contain NUL characters." in response.get_data(as_text=True)
    assert stored(crm, survey.id).answered_at is None


def test_a_post_without_the_csrf_token_is_refused(crm, client, survey):
    response = client.post(f"/nps/{survey.token}", data={"score": "10"})
    assert response.status_code == 400
    assert stored(crm, survey.id).answered_at is None
