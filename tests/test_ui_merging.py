"""The duplicate pages, the merge screen and undoing a merge, through Flask's test client.

Suggestions come from crm_core.duplicates and merges from the services: these tests
check what the pages show and that posting them merges and undoes exactly once, with
the versions the user saw, the user's permissions and the records they may see.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest
from sqlalchemy import select
from ui_support import count_rows

from crm_core.models import AuditEntry, Contact, Customer, Interaction
from crm_core.services import contacts, customers, interactions
from crm_core.testing import UiBrowser, ui_user

pytestmark = pytest.mark.plugins()

WHEN = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
RADIO = re.compile(r'<input type="radio" id="[^"]+" name="([^"]+)" value="(\d+)"( checked)?')


@pytest.fixture
def crm_settings_overrides() -> dict[str, Any]:
    return {"default_phone_region": "DE"}


@pytest.fixture
def pair(crm: Any) -> dict[str, Any]:
    """ACME GmbH and its duplicate Acme Corp. (2 contacts, 3 interactions), and Globex."""
    with crm.unit_of_work(source="test") as uow:
        acme = customers.create(
            uow, {"name": "ACME GmbH", "email": "info@acme.example", "industry": "Anvils",
                  "tags": ["a"]},
        )
        duplicate = customers.create(
            uow, {"name": "Acme Corp.", "email": "info@acme.example", "industry": "Rockets",
                  "city": "Hamburg", "country": "DE", "phone": "030 1234567", "tags": ["b"]},
        )
        globex = customers.create(uow, {"name": "Globex", "email": "hi@globex.example"})
        people = contacts.bulk_create(
            uow,
            [
                {"customer_id": acme.id, "first_name": "Stays", "last_name": "Here"},
                {"customer_id": duplicate.id, "first_name": "Wile", "last_name": "Coyote"},
                {"customer_id": duplicate.id, "first_name": "Road", "last_name": "Runner"},
            ],
        ).records
        interactions.bulk_create(
            uow,
            [
                {"customer_id": duplicate.id, "channel": "call", "subject": f"Call {hour}",
                 "occurred_at": WHEN + dt.timedelta(hours=hour)}
                for hour in range(3)
            ],
        )
    return {"acme": acme, "duplicate": duplicate, "globex": globex, "contacts": people}


def _merges(crm: Any) -> int:
    return count_rows(crm, AuditEntry, AuditEntry.action == "merged")


def _choices(page: str) -> dict[str, str]:
    """The form of the merge screen as a browser posts it: versions and checked radios."""
    data = {
        name: re.search(rf'name="{name}" value="(\d+)"', page).group(1)
        for name in ("version", "other_version")
    }
    data.update({name: value for name, value, checked in RADIO.findall(page) if checked})
    return data


def _undo_action(page: str) -> str:
    found = re.search(r'<form method="post" action="([^"]+/undo)" class="undo-merge">', page)
    assert found, "the page offers no undo"
    return html.unescape(found.group(1))


# -- duplicates ---------------------------------------------------------------------------------


def test_the_duplicates_page_says_why_and_links_to_the_merge_screen(ui, pair):
    acme, duplicate = pair["acme"], pair["duplicate"]
    page = ui.get(f"/customers/{acme.id}/duplicates")
    assert "<h1>Duplicates of ACME GmbH</h1>" in page
    row = page[page.index(f'href="/customers/{duplicate.id}">Acme Corp.</a>'):]
    row = row[: row.index("</tr>")]
    assert "<li>same email</li>" in row and "<li>similar name (100% alike)</li>" in row
    assert "info@acme.example · 030 1234567 · Hamburg" in row
    assert re.search(r"<td>(98|99)%</td>", row)  # 1 - (1 - 0.9)(1 - 0.85)
    assert f'href="/customers/{acme.id}/merge/{duplicate.id}">Compare and merge' in row
    assert "Globex" not in page


def test_percentages_are_written_as_the_users_language_writes_them(ui, pair):
    acme, duplicate = pair["acme"], pair["duplicate"]
    response = ui.client.get(f"/customers/{acme.id}/duplicates",
                             headers={"Accept-Language": "de"})
    page = response.get_data(as_text=True)
    row = page[page.index(f'href="/customers/{duplicate.id}">Acme Corp.</a>'):]
    assert re.search(r"<td>(98|99)\xa0%</td>", row)  # German: a space before the sign
    assert "100\xa0%" in row  # the similar name's


def test_a_customer_without_duplicates_gets_an_empty_state(ui, pair):
    page = ui.get(f"/customers/{pair['globex'].id}/duplicates")
    assert "No likely duplicates of Globex" in page and "<table" not in page
    ui.get("/customers/999999/duplicates", status=404)


def test_the_customer_page_links_to_its_duplicates(ui, pair):
    page = ui.get(f"/customers/{pair['acme'].id}")
    assert f'href="/customers/{pair["acme"].id}/duplicates">Duplicates</a>' in page
    assert "Undo the merge" not in page


# -- the merge screen ---------------------------------------------------------------------------


def test_the_merge_screen_compares_field_by_field_and_says_what_moves(ui, pair):
    acme, duplicate = pair["acme"], pair["duplicate"]
    page = ui.get(f"/customers/{acme.id}/merge/{duplicate.id}")
    assert "<h1>Merge Acme Corp. into ACME GmbH</h1>" in page
    chosen = _choices(page)
    assert chosen["version"] == "1" and chosen["other_version"] == "1"
    # differing fields: the survivor's value by default, an empty one filled from the other
    assert chosen["keep_name"] == str(acme.id)
    assert chosen["keep_industry"] == str(acme.id)
    assert chosen["keep_city"] == str(duplicate.id)
    assert chosen["keep_phone"] == str(duplicate.id)
    assert "keep_email" not in {name for name, _value, _checked in RADIO.findall(page)}
    assert '<span class="visually-hidden">City: keep </span>(empty)</label>' in page
    assert '<span class="visually-hidden">Industry: keep </span>Rockets</label>' in page
    assert "<li>2 contacts</li>" in page and "<li>3 interactions</li>" in page
    assert "<li>Tags afterwards: a, b</li>" in page
    assert f'href="/customers/{duplicate.id}/merge/{acme.id}">Keep Acme Corp. instead' in page


def test_merging_moves_everything_and_the_survivor_page_offers_the_undo(crm, ui, pair):
    acme, duplicate = pair["acme"], pair["duplicate"]
    form = _choices(ui.get(f"/customers/{acme.id}/merge/{duplicate.id}"))
    response = ui.post(
        f"/customers/{acme.id}/merge/{duplicate.id}", {**form, "keep_industry": duplicate.id}
    )
    assert response.headers["Location"] == f"/customers/{acme.id}"
    with crm.session_factory() as session:
        survivor = session.get(Customer, acme.id)
        merged = session.get(Customer, duplicate.id)
        assert (survivor.industry, survivor.city, survivor.name) == ("Rockets", "Hamburg",
                                                                     "ACME GmbH")
        assert survivor.tags == ["a", "b"]
        assert merged.archived and merged.merged_into_id == acme.id
        source = session.scalar(select(AuditEntry.source).where(AuditEntry.action == "merged"))
    assert source == "ui"
    assert count_rows(crm, Contact, Contact.customer_id == acme.id) == 3
    assert count_rows(crm, Interaction, Interaction.customer_id == acme.id) == 3
    page = ui.get(f"/customers/{acme.id}")
    assert "Acme Corp. was merged into ACME GmbH." in page
    assert "Undo the merge" in page
    assert "Undo the merge" in ui.get(f"/customers/{acme.id}/duplicates")


def test_undoing_the_merge_brings_both_customers_back(crm, ui, pair):
    acme, duplicate = pair["acme"], pair["duplicate"]
    form = _choices(ui.get(f"/customers/{acme.id}/merge/{duplicate.id}"))
    ui.post(f"/customers/{acme.id}/merge/{duplicate.id}", {**form, "keep_industry": duplicate.id})
    action = _undo_action(ui.get(f"/customers/{acme.id}"))
    response = ui.post(action, {})
    assert response.headers["Location"] == f"/customers/{acme.id}"
    page = ui.get(f"/customers/{acme.id}")
    assert "The merge was undone: Acme Corp. is back beside ACME GmbH." in page
    assert "Undo the merge" not in page
    with crm.session_factory() as session:
        survivor = session.get(Customer, acme.id)
        restored = session.get(Customer, duplicate.id)
        assert (survivor.industry, survivor.city, survivor.tags) == ("Anvils", None, ["a"])
        assert not restored.archived and restored.merged_into_id is None
        actions = list(session.scalars(
            select(AuditEntry.source).where(AuditEntry.action == "merge_undone")
        ))
    assert actions == ["ui", "ui"]  # the survivor's entry and the restored record's
    assert count_rows(crm, Contact, Contact.customer_id == duplicate.id) == 2
    assert count_rows(crm, Interaction, Interaction.customer_id == duplicate.id) == 3
    ui.post(action, {}, status=422)  # undone already: the service refuses, nothing changes
    assert count_rows(crm, Contact, Contact.customer_id == duplicate.id) == 2


def test_an_undo_that_would_lose_later_work_is_refused_with_the_reasons(crm, ui, pair):
    acme, duplicate = pair["acme"], pair["duplicate"]
    form = _choices(ui.get(f"/customers/{acme.id}/merge/{duplicate.id}"))
    ui.post(f"/customers/{acme.id}/merge/{duplicate.id}", form)
    action = _undo_action(ui.get(f"/customers/{acme.id}"))
    with crm.unit_of_work(source="test") as uow:
        customers.update(uow, acme.id, {"city": "Bremen"})
    page = ui.post(action, {}, status=422).get_data(as_text=True)
    assert "The merge into ACME GmbH cannot be undone" in page
    assert "&#39;city&#39; has been changed since the merge." in page
    with crm.session_factory() as session:
        assert session.get(Customer, duplicate.id).archived
        assert session.get(Customer, acme.id).city == "Bremen"


def test_a_stale_version_shows_the_screen_again_and_merges_nothing(crm, ui, pair):
    acme, duplicate = pair["acme"], pair["duplicate"]
    form = _choices(ui.get(f"/customers/{acme.id}/merge/{duplicate.id}"))
    with crm.unit_of_work(source="test") as uow:
        customers.update(uow, duplicate.id, {"city": "Bremen"})
    response = ui.post(f"/customers/{acme.id}/merge/{duplicate.id}", form, status=409)
    page = response.get_data(as_text=True)
    assert "Acme Corp. was changed while you were comparing" in page
    assert "You compared version 1; it is now version 2." in page
    assert _choices(page)["other_version"] == "2"
    assert '<span class="visually-hidden">City: keep </span>Bremen</label>' in page
    assert _merges(crm) == 0
    with crm.session_factory() as session:
        assert not session.get(Customer, duplicate.id).archived


def test_bad_choices_are_explained_per_field_and_nothing_is_merged(crm, ui, pair):
    acme, duplicate = pair["acme"], pair["duplicate"]
    form = _choices(ui.get(f"/customers/{acme.id}/merge/{duplicate.id}"))
    bad = {**form, "keep_name": "999999", "keep_industry": duplicate.id}
    del bad["keep_city"]
    page = ui.post(f"/customers/{acme.id}/merge/{duplicate.id}", bad, status=422).get_data(
        as_text=True
    )
    for name in ("keep_name", "keep_city"):
        assert f'<ul class="field-errors" id="{name}-errors">' in page, name
        assert f'aria-describedby="{name}-errors" aria-invalid="true"' in page, name
    assert 'id="keep_phone-errors"' not in page
    assert _choices(page)["keep_industry"] == str(duplicate.id)  # what was chosen stays
    assert "Nothing was merged" in page
    assert _merges(crm) == 0 and count_rows(crm, Customer, Customer.archived.is_(True)) == 0
    ui.post(f"/customers/{acme.id}/merge/{duplicate.id}", {"version": "x"}, status=400)
    ui.get(f"/customers/{acme.id}/merge/{acme.id}", status=400)


def test_an_archived_customer_cannot_be_merged(crm, ui, pair):
    acme, duplicate = pair["acme"], pair["duplicate"]
    with crm.unit_of_work(source="test") as uow:
        customers.archive(uow, duplicate.id)
    page = ui.get(f"/customers/{acme.id}/merge/{duplicate.id}")
    assert "Acme Corp. is archived: restore it (or undo its merge) first." in page
    assert "<button type=\"submit\">Merge" not in page
    response = ui.post(
        f"/customers/{acme.id}/merge/{duplicate.id}", _choices(page), status=422
    )
    assert f"customer {duplicate.id} is archived; restore it first." in response.get_data(
        as_text=True
    )
    assert _merges(crm) == 0


# -- permissions and visibility -----------------------------------------------------------------


def test_merging_and_undoing_need_customer_merge(crm, app, ui, pair):
    acme, duplicate = pair["acme"], pair["duplicate"]
    form = _choices(ui.get(f"/customers/{acme.id}/merge/{duplicate.id}"))
    ui_user(crm, "viewer@merge.example", ["customer.view"])
    viewer = UiBrowser(app.test_client(), "viewer@merge.example")
    assert ">Duplicates</a>" not in viewer.get(f"/customers/{acme.id}")
    suggestions = viewer.get(f"/customers/{acme.id}/duplicates")
    assert "Acme Corp." in suggestions and "Compare and merge" not in suggestions
    assert "customer.merge" in viewer.get(f"/customers/{acme.id}/merge/{duplicate.id}", 403)
    viewer.post(f"/customers/{acme.id}/merge/{duplicate.id}", form, status=403)
    assert _merges(crm) == 0

    ui.post(f"/customers/{acme.id}/merge/{duplicate.id}", form)
    action = _undo_action(ui.get(f"/customers/{acme.id}"))
    assert "Undo the merge" not in viewer.get(f"/customers/{acme.id}")
    viewer.post(action, {}, status=403)
    with crm.session_factory() as session:
        assert session.get(Customer, duplicate.id).archived


def test_records_the_user_may_not_see_are_not_found(crm, app, ui, pair):
    acme, duplicate = pair["acme"], pair["duplicate"]
    seller = ui_user(crm, "seller@merge.example", ["customer.view", "customer.merge"],
                     visibility="own")
    with crm.unit_of_work(source="test") as uow:
        mine = customers.create(uow, {"name": "Acme Corp", "owner_id": seller.id})
    browser = UiBrowser(app.test_client(), "seller@merge.example")
    assert "Acme Corp." not in browser.get(f"/customers/{mine.id}/duplicates")
    browser.get(f"/customers/{acme.id}/duplicates", status=404)
    browser.get(f"/customers/{mine.id}/merge/{duplicate.id}", status=404)
    browser.post(
        f"/customers/{mine.id}/merge/{duplicate.id}", {"version": "1", "other_version": "1"},
        status=404,
    )
    assert _merges(crm) == 0

    ui.post(f"/customers/{acme.id}/merge/{duplicate.id}",
            _choices(ui.get(f"/customers/{acme.id}/merge/{duplicate.id}")))
    action = _undo_action(ui.get(f"/customers/{acme.id}"))
    merge_id = action.split("/")[-2]
    browser.post(action, {}, status=404)
    assert "There is no merge" in browser.post(
        f"/customers/{mine.id}/merges/{merge_id}/undo", {}, status=404
    ).get_data(as_text=True)
    with crm.session_factory() as session:
        assert session.get(Customer, duplicate.id).archived


def test_the_pages_need_a_signed_in_user(client, pair):
    acme, duplicate = pair["acme"], pair["duplicate"]
    for path in (f"/customers/{acme.id}/duplicates",
                 f"/customers/{acme.id}/merge/{duplicate.id}"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")


# -- contacts -----------------------------------------------------------------------------------


@pytest.fixture
def people(crm: Any, pair: dict[str, Any]) -> dict[str, Any]:
    """Ada Kowalska twice at ACME: work email on one, home email and a phone on the other."""
    acme = pair["acme"]
    with crm.unit_of_work(source="test") as uow:
        ada = contacts.create(
            uow, {"customer_id": acme.id, "first_name": "Ada", "last_name": "Kowalska",
                  "job_title": "Buyer", "emails": [{"email": "ada@acme.example"}]},
        )
        again = contacts.create(
            uow, {"customer_id": acme.id, "first_name": "Ada", "last_name": "Kowalska",
                  "job_title": "Head of purchasing",
                  "emails": [{"email": "ada@home.example", "label": "home"}],
                  "phones": [{"number": "0151 2345678"}]},
        )
        interactions.create(
            uow, {"customer_id": acme.id, "contact_id": again.id, "channel": "call",
                  "subject": "Ada called", "occurred_at": WHEN},
        )
    return {"ada": ada, "again": again}


def test_contact_duplicates_merge_and_undo(crm, ui, people):
    ada, again = people["ada"], people["again"]
    page = ui.get(f"/contacts/{ada.id}/duplicates")
    assert "<h1>Duplicates of Ada Kowalska</h1>" in page
    assert "<li>similar name (100% alike)</li>" in page and "<li>same customer</li>" in page
    assert "ACME GmbH · Head of purchasing · ada@home.example" in page
    screen = ui.get(f"/contacts/{ada.id}/merge/{again.id}")
    assert "<li>1 interaction</li>" in screen
    assert "<li>Emails afterwards: ada@acme.example, ada@home.example</li>" in screen
    form = _choices(screen)
    assert form["keep_job_title"] == str(ada.id) and "keep_last_name" not in form

    response = ui.post(
        f"/contacts/{ada.id}/merge/{again.id}", {**form, "keep_job_title": again.id}
    )
    assert response.headers["Location"] == f"/contacts/{ada.id}/duplicates"
    page = ui.get(f"/contacts/{ada.id}/duplicates")
    assert "Ada Kowalska was merged into Ada Kowalska." in page
    with crm.session_factory() as session:
        merged = session.get(Contact, ada.id)
        assert merged.job_title == "Head of purchasing"
        assert [row.email for row in merged.emails] == ["ada@acme.example", "ada@home.example"]
        assert session.get(Contact, again.id).merged_into_id == ada.id
    assert count_rows(crm, Interaction, Interaction.contact_id == ada.id) == 1

    ui.post(_undo_action(page), {})
    assert "The merge was undone" in ui.get(f"/contacts/{ada.id}/duplicates")
    with crm.session_factory() as session:
        restored = session.get(Contact, ada.id)
        assert restored.job_title == "Buyer"
        assert [row.email for row in restored.emails] == ["ada@acme.example"]
        assert not session.get(Contact, again.id).archived
    assert count_rows(crm, Interaction, Interaction.contact_id == again.id) == 1


def test_contact_merges_need_contact_merge_and_bad_input_saves_nothing(crm, app, ui, people):
    ada, again = people["ada"], people["again"]
    form = _choices(ui.get(f"/contacts/{ada.id}/merge/{again.id}"))
    page = ui.post(
        f"/contacts/{ada.id}/merge/{again.id}", {**form, "keep_job_title": "nobody"}, status=422
    ).get_data(as_text=True)
    assert 'id="keep_job_title-errors"' in page
    ui_user(crm, "contacts@merge.example", ["customer.view", "contact.view", "customer.merge"])
    browser = UiBrowser(app.test_client(), "contacts@merge.example")
    assert "Compare and merge" not in browser.get(f"/contacts/{ada.id}/duplicates")
    assert "contact.merge" in browser.get(f"/contacts/{ada.id}/merge/{again.id}", status=403)
    browser.post(f"/contacts/{ada.id}/merge/{again.id}", form, status=403)
    ui.get("/contacts/999999/duplicates", status=404)
    assert _merges(crm) == 0 and count_rows(crm, Contact, Contact.archived.is_(True)) == 0
