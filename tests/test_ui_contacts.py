"""The contact pages of the UI: the list, the contact's page, the create and edit forms.

Through Flask's test client, as a browser uses them: every page and form, bad input
(each field's message beside its field, repeated rows included; nothing saved),
conflicting edits, permissions (403) and contacts the user may not see (404).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import select
from ui_support import count_rows, stored_row

from crm_core.models import AuditEntry, Contact, ContactEmail, ContactPhone, Customer
from crm_core.services import contacts, customers, interactions
from crm_core.testing import UiBrowser, link_of, sql_statements, ui_user

SELLER_PERMISSIONS = [
    "customer.view", "customer.edit", "contact.view", "contact.edit", "interaction.view",
]


@pytest.fixture
def acme(crm: Any) -> Customer:
    with crm.unit_of_work(source="test") as uow:
        return customers.create(uow, {"name": "ACME Tools GmbH", "country": "DE"})


@pytest.fixture
def ada(crm: Any, acme: Customer) -> Contact:
    with crm.unit_of_work(source="test") as uow:
        return contacts.create(
            uow,
            {"customer_id": acme.id, "first_name": "Ada", "last_name": "Kowalska",
             "job_title": "Buyer", "consent_email": True,
             "emails": [{"label": "work", "email": "ada@acme.example"},
                        {"label": "home", "email": "ada@home.example"}],
             "phones": [{"label": "mobile", "number": "030 1234567"}]},
        )


# -- the list -------------------------------------------------------------------------------------


def test_contact_pages_send_anonymous_visitors_to_sign_in(client, ada):
    for path in ("/contacts", "/contacts.pdf", f"/contacts/{ada.id}", "/contacts/new",
                 f"/contacts/{ada.id}/edit"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def test_the_list_shows_customer_first_email_and_phone_and_is_in_the_menu(ui, ada, acme):
    page = ui.get("/contacts")
    assert '<a href="/contacts" aria-current="page">Contacts</a>' in page
    row = page[page.index('<th scope="row">'):page.index("</tr>", page.index('<th scope="row">'))]
    assert f'<a href="/contacts/{ada.id}">Ada Kowalska</a>' in row
    assert "Buyer" in row
    assert f'<a href="/customers/{acme.id}">ACME Tools GmbH</a>' in row
    assert 'href="mailto:ada@acme.example"' in row and "ada@home.example" not in row
    assert 'href="tel:+49301234567"' in row and "030 1234567" in row
    assert 'href="/contacts/new"' in page


def test_the_list_pages_by_last_name_with_one_query_for_customer_names(crm, ui, acme):
    with crm.unit_of_work(source="test") as uow:
        others = customers.bulk_create(uow, [{"name": f"Firm {n:02d}"} for n in range(55)]).records
        contacts.bulk_create(
            uow,
            [{"first_name": "P", "last_name": f"Person {n:02d}", "customer_id": firm.id,
              "emails": [{"email": f"p{n}@firm.example"}]}
             for n, firm in enumerate(others)],
        )
    with sql_statements(crm) as statements:
        first = ui.get("/contacts")
    customer_queries = [s for s in statements if "FROM customer" in s and "contact" not in s]
    assert len(customer_queries) == 1, customer_queries  # one for the page, not one per row
    assert first.count('<th scope="row">') == 50
    assert "Person 00" in first and "Person 49" in first and "Person 50" not in first
    assert first.index("Person 07") < first.index("Person 08")
    assert "Firm 49" in first
    second = ui.get(link_of(first))
    assert second.count('<th scope="row">') == 5 and "Person 54" in second
    assert 'rel="next"' not in second and "First page" in second
    assert 'href="/contacts.pdf"' in second  # the printout starts at the top, not at this page
    ui.get("/contacts?cursor=not-a-cursor", status=400)
    ui.get("/contacts?customer_id=abc", status=400)


def test_the_list_searches_and_filters_by_customer(crm, ui, ada, acme):
    with crm.unit_of_work(source="test") as uow:
        other = customers.create(uow, {"name": "Nordic Fika AB"})
        contacts.create(uow, {"customer_id": other.id, "first_name": "Björn", "last_name": "Berg"})
    found = ui.get("/contacts?q=kowalska")
    assert found.count('<th scope="row">') == 1 and "Ada Kowalska" in found
    assert ui.get("/contacts?q=ada@acme.example").count('<th scope="row">') == 1
    mine = ui.get(f"/contacts?customer_id={acme.id}")
    assert mine.count('<th scope="row">') == 1 and "Björn" not in mine
    assert "<h1>Contacts of ACME Tools GmbH</h1>" in mine
    assert f'href="/contacts/new?customer_id={acme.id}"' in mine
    theirs = ui.get(f"/contacts?customer_id={other.id}")
    assert "Björn Berg" in theirs and "Ada" not in theirs
    assert "No contacts match these filters" in ui.get("/contacts?q=nothing-like-it")


def test_a_seller_lists_and_opens_only_contacts_they_may_see(crm, client, ada):
    seller = ui_user(crm, "seller@ui.example", SELLER_PERMISSIONS, visibility="own")
    with crm.unit_of_work(source="test") as uow:
        own = customers.create(uow, {"name": "Seller's Own AB", "owner_id": seller.id})
        mine = contacts.create(uow, {"customer_id": own.id, "last_name": "Mine"})
    browser = UiBrowser(client, "seller@ui.example")
    page = browser.get("/contacts")
    assert f'href="/contacts/{mine.id}"' in page and "Kowalska" not in page
    assert "Mine" in browser.get(f"/contacts/{mine.id}")
    assert "There is no contact" in browser.get(f"/contacts/{ada.id}", status=404)
    browser.get(f"/contacts/{ada.id}/edit", status=404)
    browser.post(f"/contacts/{ada.id}/edit", {"version": "1", "last_name": "X"}, status=404)
    assert stored_row(crm, Contact, ada.id).last_name == "Kowalska"
    ui_get = browser.get("/contacts/999999", status=404)
    assert "There is no contact" in ui_get


# -- the list's printout --------------------------------------------------------------------------


def _pdf_text(response: Any) -> str:
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
    return " ".join(text.split())  # words, whatever the lines they were set on


def test_the_list_prints_as_a_pdf_with_its_search_and_customer_filter(crm, ui, ada, acme):
    with crm.unit_of_work(source="test") as uow:
        other = customers.create(uow, {"name": "Nordic Fika AB"})
        contacts.create(uow, {"customer_id": other.id, "first_name": "Björn", "last_name": "Berg"})
    response = ui.client.get("/contacts.pdf")
    assert response.headers["Content-Disposition"] == 'inline; filename="contacts.pdf"'
    everyone = _pdf_text(response)
    assert "Ada Kowalska" in everyone and "Björn Berg" in everyone
    assert "ada@acme.example" in everyone and "ACME Tools GmbH" in everyone
    assert "Sign out" not in everyone and "New contact" not in everyone  # the print stylesheet
    theirs = _pdf_text(ui.client.get(f"/contacts.pdf?customer_id={other.id}"))
    assert "Contacts of Nordic Fika AB" in theirs and "Björn Berg" in theirs
    assert "Kowalska" not in theirs
    found = _pdf_text(ui.client.get("/contacts.pdf?q=kowalska"))
    assert "Ada Kowalska" in found and "Björn" not in found
    mine = ui.get(f"/contacts?customer_id={acme.id}&q=ada")
    assert f'href="/contacts.pdf?customer_id={acme.id}&amp;q=ada"' in mine
    ui.get("/contacts.pdf?customer_id=abc", status=400)


def test_a_long_list_prints_its_first_rows_and_says_so(crm, ui, ada, monkeypatch):
    from crm_core.web.ui import contacts as contact_pages

    with crm.unit_of_work(source="test") as uow:
        contacts.create(uow, {"first_name": "Zofia", "last_name": "Zielinska"})
    monkeypatch.setattr(contact_pages, "PRINT_ROWS", 1)
    text = _pdf_text(ui.client.get("/contacts.pdf"))
    assert "Ada Kowalska" in text and "Zielinska" not in text
    assert "The first 1 contact; narrow the filters to print the others." in text


def test_a_seller_prints_only_the_contacts_they_may_see(crm, client, ada):
    seller = ui_user(crm, "seller@ui.example", SELLER_PERMISSIONS, visibility="own")
    with crm.unit_of_work(source="test") as uow:
        own = customers.create(uow, {"name": "Seller's Own AB", "owner_id": seller.id})
        contacts.create(uow, {"customer_id": own.id, "first_name": "Mia", "last_name": "Mine"})
    browser = UiBrowser(client, "seller@ui.example")
    text = _pdf_text(browser.client.get("/contacts.pdf"))
    assert "Mia Mine" in text and "Kowalska" not in text and "ada@acme.example" not in text
    assert "Kowalska" not in _pdf_text(browser.client.get("/contacts.pdf?q=kowalska"))


# -- the contact's page ---------------------------------------------------------------------------


def test_the_contact_page_shows_details_consent_and_links(crm, ui, ada, acme):
    page = ui.get(f"/contacts/{ada.id}")
    assert "<h1>Ada Kowalska</h1>" in page
    assert f'<a href="/customers/{acme.id}">ACME Tools GmbH</a>' in page
    assert "<dt>Email (work)</dt>" in page and 'href="mailto:ada@acme.example"' in page
    assert "<dt>Email (home)</dt>" in page and 'href="mailto:ada@home.example"' in page
    assert "<dt>Phone (mobile)</dt>" in page and 'href="tel:+49301234567"' in page
    today = dt.datetime.now(dt.UTC).date()
    assert f'<dt>Emails</dt><dd>Agreed on <time datetime="{today.isoformat()}' in page
    assert f">{today:%b} {today.day}, {today.year}</time></dd>" in page  # as English writes it
    assert "<dt>Phone calls</dt><dd>Not agreed</dd>" in page
    assert "<dt>Owner</dt><dd>Nobody</dd>" in page  # made by the system, without an owner
    assert f'href="/contacts/{ada.id}/edit"' in page
    assert f'href="/contacts/{ada.id}/history"' in page
    assert "No interactions with Ada Kowalska" in page


def test_the_contact_page_lists_interactions_newest_first_with_older_pages(crm, ui, ada, acme):
    start = dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC)
    with crm.unit_of_work(source="test") as uow:
        interactions.bulk_create(
            uow,
            [{"customer_id": acme.id, "contact_id": ada.id, "channel": "call",
              "subject": f"Call {n:02d}", "occurred_at": (start + dt.timedelta(days=n)).isoformat()}
             for n in range(30)]
            + [{"customer_id": acme.id, "channel": "note", "subject": "Not about Ada",
                "occurred_at": start.isoformat()}],
        )
    first = ui.get(f"/contacts/{ada.id}")
    assert first.count('class="entry type-interaction"') == 25
    assert first.index("Call 29") < first.index("Call 28") and "Call 04" not in first
    assert "Not about Ada" not in first
    older = ui.get(link_of(first))
    assert older.count('class="entry type-interaction"') == 5
    assert "Call 04" in older and "Call 00" in older and "Call 05" not in older
    assert 'rel="next"' not in older and ">Newest</a>" in older
    ui.get(f"/contacts/{ada.id}?before=garbage", status=400)


def test_without_permissions_the_page_hides_edit_history_and_interactions(crm, client, ada):
    ui_user(crm, "reader@ui.example", ["customer.view", "contact.view"])
    reader = UiBrowser(client, "reader@ui.example")
    page = reader.get(f"/contacts/{ada.id}")
    assert "Ada Kowalska" in page
    assert "/edit" not in page and "/history" not in page and "Interactions" not in page
    assert 'href="/contacts/new"' not in reader.get("/contacts")


# -- create ---------------------------------------------------------------------------------------


def test_the_new_form_preselects_the_customer_from_its_page(ui, acme):
    customer_page = ui.get(f"/customers/{acme.id}")
    assert f'href="/contacts/new?customer_id={acme.id}">Add contact</a>' in customer_page
    form = ui.get(f"/contacts/new?customer_id={acme.id}")
    assert f'name="customer_id" type="number" value="{acme.id}"' in form
    assert f"Now: ACME Tools GmbH (customer {acme.id})" in form
    for name in ("emails-0-label", "emails-0-email", "emails-1-email", "phones-1-number"):
        assert f'name="{name}"' in form, name
    assert 'name="emails-2-email"' not in form
    assert 'type="checkbox" id="consent_email" name="consent_email"' in form


def test_a_new_contact_is_created_with_its_rows_in_order(crm, ui, acme):
    response = ui.post(
        "/contacts/new",
        {"first_name": "Grace", "last_name": "Hopper", "job_title": "CTO",
         "customer_id": str(acme.id), "owner_id": "",
         "emails-0-label": "", "emails-0-email": "",
         "emails-1-label": "home", "emails-1-email": "Grace@Home.example",
         "emails-2-label": "work", "emails-2-email": "grace@acme.example",
         "phones-0-label": "", "phones-0-number": "030 7654321",
         "phones-1-label": "", "phones-1-number": "",
         "consent_phone": "1"},
    )
    with crm.session_factory() as session:
        created = session.scalar(select(Contact).where(Contact.last_name == "Hopper"))
        assert created is not None
        assert [(e.label, e.email) for e in created.emails] == [
            ("home", "grace@home.example"), ("work", "grace@acme.example")
        ]
        assert [(p.label, p.number, p.e164) for p in created.phones] == [
            ("work", "030 7654321", "+49307654321")
        ]
        assert created.customer_id == acme.id and created.owner_id is None
        assert created.consent_phone and created.consent_phone_at is not None
        assert not created.consent_email
        source = session.scalar(
            select(AuditEntry.source).where(
                AuditEntry.entity == "contact", AuditEntry.entity_id == str(created.id)
            )
        )
    assert source == "ui"
    assert response.headers["Location"] == f"/contacts/{created.id}"
    assert "Grace Hopper was created." in ui.get(f"/contacts/{created.id}")
    customer_page = ui.get(f"/customers/{acme.id}")
    assert f'<a href="/contacts/{created.id}">Grace Hopper</a>' in customer_page


def test_bad_input_shows_each_message_beside_its_row_and_saves_nothing(crm, ui, acme):
    before = count_rows(crm, Contact)
    response = ui.post(
        "/contacts/new",
        {"first_name": "", "last_name": "", "customer_id": str(acme.id),
         "emails-0-label": "work", "emails-0-email": "good@acme.example",
         "emails-1-label": "", "emails-1-email": "not-an-email",
         "emails-2-label": "", "emails-2-email": "",
         "phones-0-label": "x" * 41, "phones-0-number": "call me maybe"},
        status=422,
    )
    page = response.get_data(as_text=True)
    assert "nothing was saved" in page
    assert 'id="last_name-errors"' in page and "Give a first or a last name." in page
    assert re.search(
        r'id="emails-1-email"[^>]*aria-describedby="emails-1-email-errors" aria-invalid="true"',
        page,
    )
    assert '<ul class="field-errors" id="emails-1-email-errors"><li>Not a valid email address.' \
        in page
    assert 'id="emails-0-email-errors"' not in page
    assert 'id="phones-0-number-errors"' in page and "Not a valid phone number." in page
    assert 'id="phones-0-label-errors"' in page
    # What was typed stays, in its rows (empty ones left out), with two empty rows after.
    assert 'name="emails-1-email" type="email" value="not-an-email"' in page
    assert 'name="emails-0-email" type="email" value="good@acme.example"' in page
    assert 'name="emails-3-email"' in page and 'name="emails-4-email"' not in page
    assert count_rows(crm, Contact) == before
    assert count_rows(crm, ContactEmail) == 0 and count_rows(crm, ContactPhone) == 0


def test_what_no_database_can_store_is_refused_not_a_server_error(crm, ui, ada, acme):
    response = ui.post(
        "/contacts/new",
        {"last_name": "Null\x00Byte", "customer_id": "99999999999", "owner_id": "-99999999999",
         "emails-0-email": "x\x00@acme.example"},
        status=422,
    )
    page = response.get_data(as_text=True)
    for name in ("last_name", "customer_id", "owner_id", "emails-0-email"):
        assert f'id="{name}-errors"' in page, name
    assert "Must be from -2147483648 to 2147483647." in page
    assert "Must not contain NUL characters." in page
    ui.post(
        f"/contacts/{ada.id}/edit", _edit_form(ada, acme, customer_id="4294967296"), status=422
    )
    assert count_rows(crm, Contact) == 1 and stored_row(crm, Contact, ada.id).version == 1


def test_a_seller_cannot_attach_a_contact_to_a_customer_they_may_not_see(crm, client, acme):
    ui_user(crm, "seller@ui.example", SELLER_PERMISSIONS, visibility="own")
    seller = UiBrowser(client, "seller@ui.example")
    form = seller.get(f"/contacts/new?customer_id={acme.id}")
    assert "ACME" not in form  # the name of a customer they may not see is not shown
    response = seller.post(
        "/contacts/new", {"last_name": "Sneaky", "customer_id": str(acme.id)}, status=422
    )
    assert 'id="customer_id-errors"' in response.get_data(as_text=True)
    assert count_rows(crm, Contact) == 0


# -- edit -----------------------------------------------------------------------------------------


def test_the_edit_form_shows_the_stored_rows_plus_two_empty_ones(ui, ada, acme):
    form = ui.get(f"/contacts/{ada.id}/edit")
    assert 'name="version" value="1"' in form
    assert 'name="first_name" type="text" value="Ada"' in form
    assert 'name="emails-0-label" type="text" value="work"' in form
    assert 'name="emails-1-email" type="email" value="ada@home.example"' in form
    assert 'name="emails-3-email" type="email" value=""' in form
    assert 'name="emails-4-email"' not in form
    assert 'name="phones-0-number" type="tel" value="030 1234567"' in form
    assert 'name="phones-2-number"' in form and 'name="phones-3-number"' not in form
    assert f"Now: ACME Tools GmbH (customer {acme.id})" in form
    assert 'name="consent_email" value="1" checked' in form
    assert 'name="consent_phone" value="1">' in form


def _edit_form(ada: Contact, acme: Customer, **changes: str) -> dict[str, str]:
    form = {
        "version": "1", "first_name": "Ada", "last_name": "Kowalska", "job_title": "Buyer",
        "customer_id": str(acme.id), "owner_id": "",
        "emails-0-label": "work", "emails-0-email": "ada@acme.example",
        "emails-1-label": "home", "emails-1-email": "ada@home.example",
        "emails-2-label": "", "emails-2-email": "",
        "phones-0-label": "mobile", "phones-0-number": "030 1234567",
        "consent_email": "1",
    }
    form.update(changes)
    return form


def test_editing_reorders_rows_drops_emptied_ones_and_stamps_consent(crm, ui, ada, acme):
    response = ui.post(
        f"/contacts/{ada.id}/edit",
        _edit_form(ada, acme, **{
            "job_title": "Head of purchasing",
            "emails-0-label": "home", "emails-0-email": "ada@home.example",
            "emails-1-label": "work", "emails-1-email": "ada@acme.example",
            "phones-0-label": "", "phones-0-number": "",
            "consent_email": "", "consent_phone": "1",
        }),
    )
    assert response.headers["Location"] == f"/contacts/{ada.id}"
    stored = stored_row(crm, Contact, ada.id)
    assert stored.job_title == "Head of purchasing" and stored.version == 2
    assert [e.email for e in stored.emails] == ["ada@home.example", "ada@acme.example"]
    assert stored.phones == []
    assert not stored.consent_email and stored.consent_email_at is not None
    assert stored.consent_phone and stored.consent_phone_at is not None
    page = ui.get(f"/contacts/{ada.id}")
    assert "Ada Kowalska was saved." in page
    assert "<dt>Phone calls</dt><dd>Agreed on" in page
    assert "<dt>Emails</dt><dd>Not agreed (withdrawn" in page


def test_edit_errors_show_beside_the_row_and_change_nothing(crm, ui, ada, acme):
    response = ui.post(
        f"/contacts/{ada.id}/edit",
        _edit_form(ada, acme, **{"emails-1-email": "broken@", "customer_id": "abc"}),
        status=422,
    )
    page = response.get_data(as_text=True)
    assert 'id="emails-1-email-errors"' in page and 'value="broken@"' in page
    assert 'id="customer_id-errors"' in page
    stored = stored_row(crm, Contact, ada.id)
    assert stored.version == 1 and [e.email for e in stored.emails][1] == "ada@home.example"
    ui.post(f"/contacts/{ada.id}/edit", {"version": "x", "last_name": "Y"}, status=400)


def test_editing_after_someone_else_saved_shows_what_differs(crm, ui, ada, acme):
    with crm.unit_of_work(source="test") as uow:
        contacts.update(
            uow, ada.id,
            {"job_title": "Procurement lead",
             "emails": [{"label": "work", "email": "a@acme.example"}]},
        )
    mine = _edit_form(ada, acme, job_title="Chief buyer")
    response = ui.post(f"/contacts/{ada.id}/edit", mine, status=409)
    page = response.get_data(as_text=True)
    assert "Someone else saved Ada Kowalska" in page
    assert "<th scope=\"row\">Job title</th><td>Procurement lead</td><td>Chief buyer</td>" in page
    assert re.search(
        r"<th scope=\"row\">Emails</th><td>work: a@acme.example</td>"
        r"<td>work: ada@acme.example; home: ada@home.example</td>",
        page,
    )
    assert "First name" not in page.split("<tbody>")[1].split("</tbody>")[0]
    assert 'name="version" value="2"' in page
    assert 'value="Chief buyer"' in page  # the user's input stays
    assert stored_row(crm, Contact, ada.id).job_title == "Procurement lead"
    ui.post(f"/contacts/{ada.id}/edit", {**mine, "version": "2"})
    assert stored_row(crm, Contact, ada.id).job_title == "Chief buyer"


# -- permissions ----------------------------------------------------------------------------------


def test_contact_pages_and_forms_need_their_permissions(crm, app, client, ada, acme):
    ui_user(crm, "viewer@ui.example", ["customer.view", "contact.view"])
    viewer = UiBrowser(client, "viewer@ui.example")
    assert "Add contact" not in viewer.get(f"/customers/{acme.id}")
    assert "contact.edit" in viewer.get("/contacts/new", status=403)
    viewer.post("/contacts/new", {"last_name": "Sneaky"}, status=403)
    viewer.get(f"/contacts/{ada.id}/edit", status=403)
    viewer.post(f"/contacts/{ada.id}/edit", _edit_form(ada, acme, last_name="Changed"), status=403)
    assert count_rows(crm, Contact) == 1
    assert stored_row(crm, Contact, ada.id).last_name == "Kowalska"

    ui_user(crm, "stranger@ui.example", ["customer.view"])
    stranger = UiBrowser(app.test_client(), "stranger@ui.example")
    assert ">Contacts</a>" not in stranger.get("/")
    assert "contact.view" in stranger.get("/contacts", status=403)
    stranger.get("/contacts.pdf", status=403)
    stranger.get(f"/contacts/{ada.id}", status=403)
