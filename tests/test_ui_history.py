"""The record history pages of the UI: a customer's and a contact's audit entries.

Newest first, who (by name), where from, what, and each field old → new; paged by
keyset; ``audit.view`` needed (403) and the record must be one the user may see (404).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from crm_core.models import Contact, Customer
from crm_core.services import contacts, customers
from crm_core.testing import UiBrowser, link_of, make_user, ui_user


@pytest.fixture
def acme(crm: Any) -> Customer:
    editor = make_user(crm, "Editor@example.com")
    with crm.unit_of_work(actor=editor, source="import") as uow:
        customer = customers.create(uow, {"name": "ACME Tools GmbH", "city": "Berlin"})
    with crm.unit_of_work(actor=editor, source="api") as uow:
        customers.update(uow, customer.id, {"city": "Hamburg", "lifecycle_stage": "customer"})
    return customer


@pytest.fixture
def ada(crm: Any, acme: Customer) -> Contact:
    with crm.unit_of_work(source="test") as uow:
        contact = contacts.create(
            uow,
            {"customer_id": acme.id, "last_name": "Kowalska",
             "emails": [{"label": "work", "email": "ada@acme.example"}]},
        )
        contacts.update(
            uow, contact.id,
            {"emails": [{"label": "home", "email": "ada@home.example"}], "consent_email": True},
        )
    return contact


def _rows(page: str) -> list[str]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)


def test_the_customer_history_shows_who_changed_what_from_where(ui, acme):
    customer_page = ui.get(f"/customers/{acme.id}")
    assert f'href="/customers/{acme.id}/history">History</a>' in customer_page
    page = ui.get(f"/customers/{acme.id}/history")
    assert "<h1>History of ACME Tools GmbH</h1>" in page
    assert f'<a href="/customers/{acme.id}">ACME Tools GmbH</a>' in page
    updated, created = _rows(page)  # newest first
    assert "<td>Editor</td>" in updated  # the user's name, not their email
    assert '<span class="badge">api</span>' in updated and "<td>updated</td>" in updated
    assert re.search(
        r'<strong>City</strong>: <span class="old">Berlin</span> <span aria-hidden="true">→</span>'
        r'<span class="visually-hidden">changed to</span> <span class="new">Hamburg</span>',
        updated,
    )
    assert '<span class="old">lead</span>' in updated
    assert '<span class="new">customer</span>' in updated
    assert '<span class="badge">import</span>' in created and "<td>created</td>" in created
    assert '<strong>Name</strong>: <span class="new">ACME Tools GmbH</span>' in created
    assert 'class="old"' not in created


def test_the_contact_history_shows_rows_and_flags_readably(ui, ada):
    contact_page = ui.get(f"/contacts/{ada.id}")
    assert f'href="/contacts/{ada.id}/history">History</a>' in contact_page
    page = ui.get(f"/contacts/{ada.id}/history")
    assert "<h1>History of Kowalska</h1>" in page
    assert '<a href="/contacts">Contacts</a>' in page
    updated, created = _rows(page)
    assert "<td>System</td>" in updated  # written without a user
    assert '<span class="old">work: ada@acme.example</span>' in updated
    assert '<span class="new">home: ada@home.example</span>' in updated
    assert '<strong>Consent email</strong>: <span class="old">no</span>' in updated
    assert "<td>created</td>" in created


def test_history_pages_page_by_keyset_newest_first(crm, ui, acme):
    with crm.unit_of_work(source="cli") as uow:
        for number in range(55):
            customers.update(uow, acme.id, {"industry": f"Industry {number:02d}"})
    first = ui.get(f"/customers/{acme.id}/history")
    rows = _rows(first)
    assert len(rows) == 50
    assert "Industry 54" in rows[0] and "Industry 05" in rows[-1]
    older = link_of(first)
    assert older.startswith(f"/customers/{acme.id}/history?before=")
    second = ui.get(older)
    rows = _rows(second)
    assert len(rows) == 7  # Industry 04..00, the api update and the creation
    assert "Industry 04" in rows[0] and "<td>created</td>" in rows[-1]
    assert 'rel="next"' not in second and ">Newest</a>" in second
    ui.get(f"/customers/{acme.id}/history?before=abc", status=400)
    ui.get(f"/customers/{acme.id}/history?before=0", status=400)


def test_history_needs_audit_view(crm, app, client, acme, ada):
    ui_user(crm, "seller@ui.example", ["customer.view", "contact.view", "contact.edit"])
    seller = UiBrowser(client, "seller@ui.example")
    assert "/history" not in seller.get(f"/customers/{acme.id}")
    assert "/history" not in seller.get(f"/contacts/{ada.id}")
    assert "audit.view" in seller.get(f"/customers/{acme.id}/history", status=403)
    assert "audit.view" in seller.get(f"/contacts/{ada.id}/history", status=403)

    ui_user(crm, "auditor@ui.example", ["audit.view"])
    auditor = UiBrowser(app.test_client(), "auditor@ui.example")
    auditor.get(f"/customers/{acme.id}/history", status=403)  # customer.view too
    auditor.get(f"/contacts/{ada.id}/history", status=403)


def test_history_of_a_record_the_user_may_not_see_is_not_found(crm, client, acme, ada):
    auditor = ui_user(
        crm, "auditor@ui.example", ["customer.view", "contact.view", "audit.view"],
        visibility="own",
    )
    with crm.unit_of_work(source="test") as uow:
        own = customers.create(uow, {"name": "Auditor's Own AB", "owner_id": auditor.id})
    browser = UiBrowser(client, "auditor@ui.example")
    assert "History of Auditor&#39;s Own AB" in browser.get(f"/customers/{own.id}/history")
    page = browser.get(f"/customers/{acme.id}/history", status=404)
    assert "There is no customer" in page and "Berlin" not in page
    assert "There is no contact" in browser.get(f"/contacts/{ada.id}/history", status=404)
    browser.get("/customers/999999/history", status=404)
    browser.get("/contacts/999999/history", status=404)
