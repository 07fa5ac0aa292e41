"""Reading and writing surveys: every write is checked, validated, audited (``uow.record``).

The functions take a :class:`crm_core.UnitOfWork` first, as core's services do, so the
API resource (``api.py``), the answer page (``public.py``), the hook (``plugin.py``) and
other code share one set of rules. Staff see the surveys of the customers they may see;
the customer reaches their own survey only through its token.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from crm_core import (
    ConflictError,
    CRMError,
    NotFoundError,
    UnitOfWork,
    ValidationError,
    utcnow,
)
from crm_core.authz import require, visible
from crm_core.models import Customer, Interaction
from crm_core.schemas import load_or_refuse
from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement

from crm_nps.models import Survey
from crm_nps.permissions import EDIT, VIEW
from crm_nps.schemas import AnswerSchema, SurveySchema
from crm_nps.score import Nps, distribution, nps_of

#: The entity name of surveys in the audit trail and in outbox events.
ENTITY = "nps_survey"
_AUDITED = ("interaction_id", "customer_id", "score", "comment", "answered_at", "archived")
#: The environment variable naming the channels whose new interactions get a survey.
CHANNELS_VARIABLE = "CRM_NPS_CHANNELS"
DEFAULT_CHANNELS = ("call", "meeting")


class SurveyClosed(CRMError):
    """The survey takes no more answers: it was answered or withdrawn."""

    def __init__(self, survey: Survey) -> None:
        self.survey = survey
        super().__init__("withdrawn" if survey.archived else "answered")


def survey_channels() -> frozenset[str]:
    """The channels whose new interactions get a survey: ``CRM_NPS_CHANNELS``
    (comma-separated; empty: none), default ``call,meeting``."""
    raw = os.environ.get(CHANNELS_VARIABLE)
    if raw is None:
        return frozenset(DEFAULT_CHANNELS)
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def new_token() -> str:
    """A random token of 256 bits, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def visible_surveys(actor: Any) -> ColumnElement[bool]:
    """The surveys ``actor`` may see: those of the customers they may see."""
    return Survey.customer_id.in_(select(Customer.id).where(visible(actor, "customer")))


def get(uow: UnitOfWork, survey_id: int) -> Survey:
    """Survey ``survey_id``; :class:`NotFoundError` when it is missing or not visible."""
    require(uow.actor, VIEW)
    found = uow.session.scalar(
        select(Survey).where(Survey.id == survey_id, visible_surveys(uow.actor))
    )
    if found is None:
        raise NotFoundError(ENTITY, survey_id)
    return found


def create(uow: UnitOfWork, data: Mapping[str, Any]) -> Survey:
    """Send a survey for the interaction ``data["interaction_id"]`` (one the actor may see
    and that has none yet), whatever its channel."""
    require(uow.actor, EDIT)
    loaded = load_or_refuse(SurveySchema(), data)
    interaction = uow.session.scalar(
        select(Interaction).where(
            Interaction.id == loaded["interaction_id"],
            Interaction.customer_id.in_(select(Customer.id).where(visible(uow.actor,
                                                                          "customer"))),
        )
    )
    if interaction is None:
        raise ValidationError({"interaction_id": ["No such interaction."]})
    if uow.session.scalar(select(Survey.id).where(Survey.interaction_id == interaction.id)):
        raise ValidationError({"interaction_id": ["This interaction already has a survey."]})
    return _add(uow, [interaction])[0]


def create_for_interactions(uow: UnitOfWork, interactions: Iterable[Any]) -> list[Survey]:
    """Surveys for those of ``interactions`` whose channel is in :func:`survey_channels`
    and that have none yet; no permission needed (the hook runs inside the write of the
    interactions, which was checked)."""
    channels = survey_channels()
    wanted = [one for one in interactions if one.channel in channels and not one.archived]
    if not wanted:
        return []
    taken = set(uow.session.scalars(
        select(Survey.interaction_id).where(Survey.interaction_id.in_([i.id for i in wanted]))
    ))
    return _add(uow, [one for one in wanted if one.id not in taken])


def update(
    uow: UnitOfWork, survey_id: int, data: Mapping[str, Any], *,
    expected_version: int | None = None,
) -> Survey:
    """Record (or correct) the answer a customer gave another way, e.g. on the phone:
    ``score`` and ``comment`` as on the answer page."""
    require(uow.actor, EDIT)
    survey = get(uow, survey_id)
    _check_version(survey, expected_version)
    loaded = load_or_refuse(AnswerSchema(), data)
    return _change(uow, survey, {**loaded, "answered_at": survey.answered_at or utcnow()},
                   "answered")


def archive(uow: UnitOfWork, survey_id: int, *, expected_version: int | None = None) -> Survey:
    """Withdraw a survey: its link takes no more answers and the NPS leaves it out."""
    require(uow.actor, EDIT)
    survey = get(uow, survey_id)
    _check_version(survey, expected_version)
    return _change(uow, survey, {"archived": True}, "archived")


def by_token(uow: UnitOfWork, token: str, *, lock: bool = False) -> Survey:
    """The survey of the link ``token``; :class:`NotFoundError` for an unknown token.

    ``lock`` reads it afresh and locks its row until the end of the unit of work (on
    PostgreSQL; SQLite's write transaction holds the whole database already).
    """
    found = None
    if 0 < len(token) <= 64 and "\x00" not in token:
        query = select(Survey).where(Survey.token == token)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        found = uow.session.scalar(query)
    if found is None:
        raise NotFoundError(ENTITY, "token")
    return found


def answer(uow: UnitOfWork, token: str, data: Mapping[str, Any]) -> Survey:
    """The customer's answer through their link: no sign-in, the token is the credential.

    :class:`NotFoundError` for an unknown token, :class:`SurveyClosed` for a survey
    answered or withdrawn, :class:`ValidationError` naming the refused field.
    """
    survey = by_token(uow, token, lock=True)  # two answers at once: the second is refused
    if survey.archived or survey.answered_at is not None:
        raise SurveyClosed(survey)
    loaded = load_or_refuse(AnswerSchema(), data)
    return _change(uow, survey, {**loaded, "answered_at": utcnow()}, "answered")


def customer_nps(uow: UnitOfWork, customer_id: int) -> tuple[Nps, list[int], int]:
    """The customer's NPS over their answered surveys, the answers per score (0-10) and
    how many surveys were sent (withdrawn ones left out)."""
    require(uow.actor, VIEW)
    current = (Survey.customer_id == customer_id, Survey.archived.is_(False),
               visible_surveys(uow.actor))
    rows = uow.session.execute(
        select(Survey.score, func.count())
        .where(*current, Survey.score.is_not(None))
        .group_by(Survey.score)
    ).all()
    counts = {int(score): int(count) for score, count in rows}
    sent = uow.session.scalar(select(func.count()).select_from(Survey).where(*current)) or 0
    scores = [score for score, count in counts.items() for _ in range(count)]
    return nps_of(scores), distribution(counts), int(sent)


def payload(survey: Survey) -> dict[str, Any]:
    """A survey as its outbox events carry it."""
    return SurveySchema().dump(survey)  # type: ignore[no-any-return]


def _add(uow: UnitOfWork, interactions: list[Any]) -> list[Survey]:
    """One new survey per interaction, audited as ``created``."""
    now = utcnow()
    surveys = [
        Survey(interaction_id=one.id, customer_id=one.customer_id, token=new_token(),
               sent_at=now, comment="", archived=False)
        for one in interactions
    ]
    if not surveys:
        return []
    uow.session.add_all(surveys)
    uow.session.flush()
    uow.record(
        ENTITY, "created",
        [(s.id, {key: (None, getattr(s, key)) for key in _AUDITED}) for s in surveys],
        [payload(s) for s in surveys],
    )
    return surveys


def _change(uow: UnitOfWork, survey: Survey, values: Mapping[str, Any], action: str) -> Survey:
    """Set ``values`` on ``survey``; audit what changed (nothing changed: nothing recorded)."""
    before = {key: getattr(survey, key) for key in _AUDITED}
    for key, value in values.items():
        setattr(survey, key, value)
    changes = {key: (old, getattr(survey, key)) for key, old in before.items()
               if old != getattr(survey, key)}
    if changes:
        uow.session.flush()
        uow.record(ENTITY, action, [(survey.id, changes)], [payload(survey)])
    return survey


def _check_version(survey: Survey, expected: int | None) -> None:
    if expected is not None and survey.version != expected:
        raise ConflictError(ENTITY, survey.id, expected, survey.version)
