"""Fixtures of the plugin's tests, on top of ``crm_core.testing`` (crm-core's pytest
plugin): every test here runs with this plugin as the only one loaded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from crm_core.services import customers
from crm_core.testing import make_interaction, make_user
from sqlalchemy import select

from crm_nps import services
from crm_nps.models import Survey
from crm_nps.services import CHANNELS_VARIABLE

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Load only this plugin into the CRM of each test here (unless a test says otherwise)."""
    for item in items:
        if HERE in item.path.parents and item.get_closest_marker("plugins") is None:
            item.add_marker(pytest.mark.plugins("crm_nps"))


@pytest.fixture(autouse=True)
def default_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default survey channels (call, meeting), whatever the caller's environment."""
    monkeypatch.delenv(CHANNELS_VARIABLE, raising=False)


@pytest.fixture
def editor(crm: Any) -> Any:
    """A user with every permission, the plugin's included, seeing every record."""
    return make_user(crm, "editor@example.com")


@pytest.fixture
def customer(crm: Any, editor: Any) -> Any:
    """A customer to survey."""
    with crm.unit_of_work(actor=editor, source="test") as uow:
        return customers.create(uow, {"name": "ACME Tools GmbH", "owner_id": editor.id})


@pytest.fixture
def survey_of(crm: Any) -> Callable[[int], Survey | None]:
    """Reads the survey of an interaction in a unit of work of its own (``None``: none)."""

    def read(interaction_id: int) -> Survey | None:
        with crm.unit_of_work(source="test", write=False) as uow:
            found = uow.session.scalar(
                select(Survey).where(Survey.interaction_id == interaction_id))
            if found is not None:
                uow.session.expunge(found)
            return found

    return read


@pytest.fixture
def survey(crm: Any, editor: Any, customer: Any, survey_of: Any) -> Survey:
    """The survey the hook sent after a call with ``customer``."""
    call = make_interaction(crm, actor=editor, customer_id=customer.id, channel="call",
                            subject="Onboarding call")
    found = survey_of(call.id)
    assert found is not None
    return found


@pytest.fixture
def answer_scores(crm: Any, editor: Any, survey_of: Any) -> Callable[[int, list[int]], None]:
    """Logs one call per score with a customer and answers its survey with that score."""

    def answer(customer_id: int, scores: list[int]) -> None:
        for score in scores:
            call = make_interaction(crm, actor=editor, customer_id=customer_id, channel="call")
            with crm.unit_of_work(source="test") as uow:
                services.answer(uow, survey_of(call.id).token, {"score": score})

    return answer
