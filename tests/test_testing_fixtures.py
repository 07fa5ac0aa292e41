"""crm_core.testing's factories, the ``customer``/``contact`` fixtures and the browser pair.

The factories write through the services (validation and hooks run), alone or in the
test's unit of work; ``served_app`` serves a fresh database over HTTP with the plugins
the mark chooses; ``browser`` fails, never skips, without Chromium or Playwright and is
the only part that imports Playwright.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crm_core import testing
from crm_core.errors import ValidationError
from crm_core.models import Contact, Customer, Interaction
from crm_core.runtime import CRM
from crm_core.services.unit_of_work import RecordChange, UnitOfWork
from crm_core.testing import (
    api_token,
    make_contact,
    make_customer,
    make_interaction,
    make_user,
    plugin_module,
)

pytest_plugins = ["pytester"]

CREATED: list[str] = []


def _remember_created(uow: UnitOfWork, changes: Sequence[RecordChange]) -> None:
    CREATED.extend(change.record.name for change in changes)


@pytest.fixture
def crm_plugin_modules() -> list[Any]:
    """A plugin that notes the names of created customers, to see the hooks run."""
    CREATED.clear()
    return [plugin_module("creations", crm_on_customers_created=_remember_created)]


# -- factories ------------------------------------------------------------------------------


def test_make_customer_commits_a_customer_with_a_unique_name(crm: CRM) -> None:
    first, second = make_customer(crm), make_customer(crm)
    assert isinstance(first, Customer) and first.id is not None
    assert first.name != second.name
    with crm.unit_of_work(source="test", write=False) as uow:
        names = uow.session.scalars(select(Customer.name).order_by(Customer.id)).all()
    assert names == [first.name, second.name]
    assert names == CREATED  # crm_on_customers_created ran for each


def test_make_customer_takes_fields_and_validates_them(crm: CRM) -> None:
    acme = make_customer(crm, name="ACME GmbH", city="Köln", tags=["vip"])
    assert (acme.name, acme.city, acme.tags) == ("ACME GmbH", "Köln", ["vip"])
    with pytest.raises(ValidationError) as refused:
        make_customer(crm, email="not an address")
    assert "email" in refused.value.messages
    assert CREATED == ["ACME GmbH"]


def test_make_customer_with_an_actor_makes_them_the_owner(crm: CRM) -> None:
    sam = make_user(crm, "sam@example.com")
    assert make_customer(crm, actor=sam).owner_id == sam.id
    assert make_customer(crm).owner_id is None


def test_factories_join_a_unit_of_work(crm: CRM) -> None:
    with pytest.raises(RuntimeError), crm.unit_of_work(source="test") as uow:
        customer = make_customer(uow, name="Gone AB")
        make_contact(uow, customer_id=customer.id)
        make_interaction(uow, customer_id=customer.id)
        assert uow.session.get(Customer, customer.id) is customer
        raise RuntimeError("roll the unit of work back")
    with crm.unit_of_work(source="test", write=False) as uow:
        for model in (Customer, Contact, Interaction):
            assert uow.session.scalars(select(model)).all() == []


def test_an_actor_goes_with_a_crm_not_with_a_unit_of_work(uow: UnitOfWork, crm: CRM) -> None:
    with pytest.raises(TypeError):
        make_customer(uow, actor=make_user(crm, "ann@example.com"))


def test_make_contact_is_a_named_person_at_no_customer_by_default(crm: CRM) -> None:
    alone = make_contact(crm)
    assert isinstance(alone, Contact) and alone.id is not None
    assert alone.customer_id is None and alone.first_name and alone.last_name
    assert make_contact(crm).last_name != alone.last_name
    acme = make_customer(crm)
    ann = make_contact(crm, customer_id=acme.id, first_name="Ann", last_name="Lee",
                       emails=[{"email": "ann@acme.example"}])
    assert (ann.customer_id, ann.first_name, ann.last_name) == (acme.id, "Ann", "Lee")
    assert [row.email for row in ann.emails] == ["ann@acme.example"]
    with pytest.raises(ValidationError):
        make_contact(crm, first_name="", last_name="")
    with pytest.raises(ValidationError):
        make_contact(crm, customer_id=acme.id + 1000)


def test_make_interaction_is_a_note_now_at_a_new_customer_by_default(crm: CRM) -> None:
    before = dt.datetime.now(dt.UTC)
    note = make_interaction(crm)
    assert isinstance(note, Interaction) and note.id is not None
    assert note.channel == "note" and note.source == "test"
    assert before - dt.timedelta(seconds=1) <= note.occurred_at <= dt.datetime.now(dt.UTC)
    with crm.unit_of_work(source="test", write=False) as uow:
        assert uow.session.get(Customer, note.customer_id) is not None
    assert len(CREATED) == 1


def test_make_interaction_takes_fields_and_validates_them(crm: CRM) -> None:
    acme = make_customer(crm)
    when = dt.datetime(2027, 3, 1, 9, 30, tzinfo=dt.UTC)
    call = make_interaction(crm, customer_id=acme.id, channel="call", subject="Spring order",
                            occurred_at=when)
    assert (call.customer_id, call.channel, call.subject) == (acme.id, "call", "Spring order")
    assert call.occurred_at == when
    text = make_interaction(crm, customer_id=acme.id, occurred_at="2027-03-02T10:00:00+01:00")
    assert text.occurred_at == dt.datetime(2027, 3, 2, 9, 0, tzinfo=dt.UTC)
    with pytest.raises(ValidationError):
        make_interaction(crm, customer_id=acme.id, channel="carrier pigeon")
    with pytest.raises(ValidationError):
        make_interaction(crm, customer_id=acme.id, occurred_at="2027-03-02T10:00:00")


def test_the_customer_and_contact_fixtures(customer: Customer, contact: Contact) -> None:
    assert customer.id is not None and customer.name
    assert contact.customer_id == customer.id


# -- served_app -----------------------------------------------------------------------------


def _get_json(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return json.load(response)


@pytest.mark.plugins()
def test_served_app_serves_a_fresh_database_over_http(
    served_app: tuple[str, CRM], crm_database_url: str
) -> None:
    base_url, crm = served_app
    assert base_url.startswith("http://127.0.0.1:")
    assert crm.settings.database_url != crm_database_url  # not the shared database
    with urllib.request.urlopen(base_url + "/login", timeout=30) as response:
        assert response.status == 200
    token = api_token(crm, make_user(crm, "api@example.com"))
    assert _get_json(base_url + "/api/v1/customers", token)["data"] == []
    make_customer(crm, name="Served AB")  # committed: the server sees it
    names = [item["name"] for item in _get_json(base_url + "/api/v1/customers", token)["data"]]
    assert names == ["Served AB"]
    # The plugins mark chose none of the installed plugins; crm_plugin_modules still counts.
    assert [info.name for info in crm.plugins.enabled] == ["creations"]
    assert CREATED == ["Served AB"]


@pytest.mark.plugins("crm_sales")
def test_served_app_loads_the_plugins_of_the_mark(served_app: tuple[str, CRM]) -> None:
    _base_url, crm = served_app
    assert sorted(info.name for info in crm.plugins.enabled) == ["creations", "crm_sales"]


# -- browser --------------------------------------------------------------------------------

BROWSER_TEST = """
def test_uses_the_browser(browser):
    assert browser.is_connected()
"""


def test_importing_crm_core_testing_does_not_import_playwright() -> None:
    code = "import sys, crm_core.testing; print('playwright' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_browser_fails_without_chromium(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_TEST_CHROMIUM", str(pytester.path / "no-chromium"))
    pytester.makepyfile(BROWSER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert "no-chromium is missing: install Debian's chromium" in result.stdout.str()


def test_browser_fails_without_playwright(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "import sys\n"
        "sys.modules['playwright'] = None\n"
        "sys.modules['playwright.sync_api'] = None\n"
    )
    pytester.makepyfile(BROWSER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert "Failed: playwright is missing: pip install 'crm-core[test]'" in result.stdout.str()


def test_browser_is_headless_chromium(browser: Any) -> None:
    page = browser.new_page()
    assert "HeadlessChrome" in page.evaluate("navigator.userAgent")
    page.close()


# -- a plugin author's tests, alone ---------------------------------------------------------

AUTHOR_TESTS = """
import pytest

from crm_core.testing import make_interaction


def test_customers_through_the_api(api, customer):
    response = api.get(f"/customers/{customer.id}")
    assert response.status_code == 200
    assert response.get_json()["name"] == customer.name


@pytest.mark.plugins()
def test_a_logged_call(crm, customer, runner):
    call = make_interaction(crm, customer_id=customer.id, channel="call")
    assert call.customer_id == customer.id
    assert runner.invoke(args=["plugins", "--json"]).exit_code == 0
"""


def test_the_fixtures_need_no_conftest(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The entry point pytest11 = crm_core.testing is all a plugin's tests need.
    monkeypatch.setenv("CRM_TEST_DATABASES", "sqlite")
    pytester.makepyfile(AUTHOR_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=2)


# -- docs/testing.md ------------------------------------------------------------------------


def _documented() -> set[str]:
    docs = Path(__file__).resolve().parents[1] / "docs" / "testing.md"
    return set(re.findall(r"^### `([^`]+)`", docs.read_text(encoding="utf-8"), flags=re.M))


def test_every_fixture_and_helper_is_documented() -> None:
    fixtures = {
        name
        for name, value in vars(testing).items()
        if hasattr(value, "_fixture_function_marker") or hasattr(value, "_pytestfixturefunction")
    }
    assert {"crm", "served_app", "browser", "customer"} <= fixtures  # the discovery works
    missing = (fixtures | set(testing.__all__)) - _documented()
    assert not missing, f"docs/testing.md has no '### `name`' section for {sorted(missing)}"
    assert not _documented() - fixtures - set(testing.__all__), "docs/testing.md: stale names"
