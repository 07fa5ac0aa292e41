"""Surveys: sent by the hook after interactions, answered, withdrawn, audited, guarded."""

from __future__ import annotations

import pytest
from crm_core import NotFoundError, PermissionDenied, ValidationError
from crm_core.models import AuditEntry, OutboxEvent
from crm_core.services import interactions
from crm_core.testing import make_interaction, make_user
from sqlalchemy import func, select

from crm_nps import services
from crm_nps.models import Survey
from crm_nps.permissions import VIEW


def count_surveys(crm):
    with crm.unit_of_work(source="test", write=False) as uow:
        return uow.session.scalar(select(func.count()).select_from(Survey))


def test_a_call_gets_a_survey_a_note_does_not(crm, editor, customer, survey_of):
    call = make_interaction(crm, actor=editor, customer_id=customer.id, channel="call")
    note = make_interaction(crm, actor=editor, customer_id=customer.id, channel="note")
    sent = survey_of(call.id)
    assert sent is not None
    assert (sent.customer_id, sent.score, sent.answered_at, sent.archived) == (
        customer.id, None, None, False)
    assert sent.sent_at is not None
    assert survey_of(note.id) is None


def test_the_channels_are_chosen_by_the_environment(crm, editor, customer, survey_of,
                                                     monkeypatch):
    monkeypatch.setenv(services.CHANNELS_VARIABLE, "email, note")
    call = make_interaction(crm, actor=editor, customer_id=customer.id, channel="call")
    mail = make_interaction(crm, actor=editor, customer_id=customer.id, channel="email")
    assert survey_of(call.id) is None
    assert survey_of(mail.id) is not None
    monkeypatch.setenv(services.CHANNELS_VARIABLE, "")
    meeting = make_interaction(crm, actor=editor, customer_id=customer.id, channel="meeting")
    assert survey_of(meeting.id) is None


def test_a_bulk_batch_gets_one_survey_per_call(crm, editor, customer):
    rows = [{"customer_id": customer.id, "channel": channel, "subject": f"#{n}",
             "occurred_at": "2026-11-02T10:00:00+00:00"}
            for n, channel in enumerate(["call", "note", "call", "meeting"])]
    with crm.unit_of_work(actor=editor, source="test") as uow:
        interactions.bulk_create(uow, rows)
    assert count_surveys(crm) == 3


def test_tokens_are_random_long_and_unique(crm, editor, customer, survey_of):
    tokens = set()
    for _ in range(5):
        call = make_interaction(crm, actor=editor, customer_id=customer.id, channel="call")
        tokens.add(survey_of(call.id).token)
    assert len(tokens) == 5
    assert all(len(token) >= 40 for token in tokens)


def test_the_created_event_carries_the_link_token_the_audit_trail_does_not(crm, survey):
    with crm.unit_of_work(source="test", write=False) as uow:
        event = uow.session.scalar(
            select(OutboxEvent).where(OutboxEvent.type == "nps_survey.created"))
        audit = uow.session.scalar(
            select(AuditEntry).where(AuditEntry.entity == services.ENTITY))
        assert event.payload["token"] == survey.token
        assert event.payload["interaction_id"] == survey.interaction_id
        assert "token" not in audit.changes


def test_the_survey_leaves_with_a_rolled_back_interaction(crm, editor, customer):
    with pytest.raises(RuntimeError), crm.unit_of_work(actor=editor, source="test") as uow:
        make_interaction(uow, customer_id=customer.id, channel="call")
        assert uow.session.scalar(select(func.count()).select_from(Survey)) == 1
        raise RuntimeError("the caller gives up")
    assert count_surveys(crm) == 0


def test_an_answer_is_stored_and_audited(crm, survey):
    with crm.unit_of_work(source="test") as uow:
        services.answer(uow, survey.token, {"score": "9", "comment": "  Quick help  "})
    with crm.unit_of_work(source="test", write=False) as uow:
        stored = uow.session.get(Survey, survey.id)
        assert (stored.score, stored.comment) == (9, "  Quick help  ")
        assert stored.answered_at is not None
        actions = uow.session.scalars(
            select(AuditEntry.action).where(AuditEntry.entity == services.ENTITY)
            .order_by(AuditEntry.id)
        ).all()
    assert actions == ["created", "answered"]


@pytest.mark.parametrize(("data", "field"), [
    ({}, "score"),
    ({"score": None}, "score"),
    ({"score": "eleven"}, "score"),
    ({"score": 11}, "score"),
    ({"score": -1}, "score"),
    ({"score": 5, "comment": "x" * 2001}, "comment"),
])
def test_bad_answers_are_refused_by_field(crm, survey, data, field):
    with pytest.raises(ValidationError) as refused, crm.unit_of_work(source="test") as uow:
        services.answer(uow, survey.token, data)
    assert set(refused.value.messages) == {field}


def test_a_survey_takes_one_answer(crm, survey):
    with crm.unit_of_work(source="test") as uow:
        services.answer(uow, survey.token, {"score": 3})
    with pytest.raises(services.SurveyClosed), crm.unit_of_work(source="test") as uow:
        services.answer(uow, survey.token, {"score": 10})
    with crm.unit_of_work(source="test", write=False) as uow:
        assert uow.session.get(Survey, survey.id).score == 3


def test_a_withdrawn_survey_takes_no_answer(crm, editor, survey):
    with crm.unit_of_work(actor=editor, source="test") as uow:
        services.archive(uow, survey.id)
    with pytest.raises(services.SurveyClosed), crm.unit_of_work(source="test") as uow:
        services.answer(uow, survey.token, {"score": 10})


@pytest.mark.parametrize("token", ["", "nope", "x" * 65])
def test_an_unknown_token_is_not_found(crm, survey, token):
    with pytest.raises(NotFoundError), crm.unit_of_work(source="test") as uow:
        services.answer(uow, token, {"score": 10})


def test_staff_send_a_survey_once_per_interaction(crm, editor, customer, survey_of):
    note = make_interaction(crm, actor=editor, customer_id=customer.id, channel="note")
    with crm.unit_of_work(actor=editor, source="test") as uow:
        sent = services.create(uow, {"interaction_id": note.id})
        assert sent.customer_id == customer.id
    with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=editor) as uow:
        services.create(uow, {"interaction_id": note.id})
    assert set(refused.value.messages) == {"interaction_id"}
    with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=editor) as uow:
        services.create(uow, {"interaction_id": 2_000_000})
    assert set(refused.value.messages) == {"interaction_id"}


def test_sending_and_withdrawing_need_the_edit_permission(crm, customer, survey, editor):
    reader = make_user(crm, "reader@example.com", ["customer.view", "interaction.view", VIEW])
    note = make_interaction(crm, actor=editor, customer_id=customer.id, channel="note")
    with pytest.raises(PermissionDenied), crm.unit_of_work(actor=reader) as uow:
        services.create(uow, {"interaction_id": note.id})
    with pytest.raises(PermissionDenied), crm.unit_of_work(actor=reader) as uow:
        services.archive(uow, survey.id)
    with crm.unit_of_work(actor=reader, write=False) as uow:
        assert services.get(uow, survey.id).id == survey.id


def test_staff_who_cannot_see_the_customer_cannot_see_the_survey(crm, survey):
    outsider = make_user(crm, "outsider@example.com", ["customer.view", VIEW],
                         visibility="own")
    with pytest.raises(NotFoundError), crm.unit_of_work(actor=outsider, write=False) as uow:
        services.get(uow, survey.id)

