"""The export page of the UI: what the user may export, downloaded as the API streams it."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from crm_core.services import contacts, customers
from crm_core.testing import ApiClient, UiBrowser, api_token, ui_user

pytestmark = pytest.mark.plugins()


@pytest.fixture
def seller(crm: Any) -> Any:
    """A user who sees their own contacts and may export nothing else."""
    return ui_user(crm, "seller@ui.example", ["contact.view"], visibility="own")


@pytest.fixture
def records(crm: Any, seller: Any) -> dict[str, Any]:
    """A customer of the seller's with a contact, another customer's contact, an archived one."""
    with crm.unit_of_work(source="test") as uow:
        own = customers.create(uow, {"name": "Seller's Co", "owner_id": seller.id})
        other = customers.create(uow, {"name": "Other Co", "email": "other@x.example"})
        ada = contacts.create(
            uow,
            {"customer_id": own.id, "first_name": "Ada", "last_name": "Kowalska",
             "emails": [{"label": "work", "email": "ada@own.example"}]},
        )
        contacts.create(uow, {"customer_id": other.id, "first_name": "Bo", "last_name": "Other"})
        gone = contacts.create(
            uow, {"customer_id": own.id, "first_name": "Cy", "last_name": "Archived"}
        )
        contacts.archive(uow, gone.id)
    return {"own": own, "other": other, "ada": ada}


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_anonymous_visitors_sign_in_first(client):
    for path in ("/exports", "/exports/contacts.csv"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_the_page_lists_every_export_with_its_formats_and_options(ui):
    page = ui.get("/exports")
    assert '<a href="/exports" aria-current="page">Export</a>' in page
    for name in ("customers", "contacts", "interactions"):
        assert f'<h2 id="export-{name}">{name.capitalize()}</h2>' in page
        assert f'formaction="/exports/{name}.csv">CSV</button>' in page
        assert f'formaction="/exports/{name}.jsonl">JSON Lines</button>' in page
        assert f'<label for="{name}-archived">Include archived</label>' in page
        assert f'<label for="{name}-excel">Excel (BOM)</label>' in page
    assert 'formaction="/exports/contacts.vcf">vCard</button>' in page
    assert page.count(">vCard</button>") == 1
    assert '<form method="get" action="/exports/contacts.csv">' in page


def test_downloads_stream_what_the_api_streams(client, crm, ui, records):
    response = client.get("/exports/contacts.csv")
    assert response.status_code == 200 and response.is_streamed
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="contacts.csv"'
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_data(as_text=True)
    assert [row["first_name"] for row in rows(body)] == ["Ada", "Bo"]
    api = ApiClient(client, api_token(crm, ui_user(crm, "api@ui.example")))
    assert api.get("/exports/contacts.csv").get_data(as_text=True) == body
    archived = client.get("/exports/contacts.csv?include_archived=true").get_data(as_text=True)
    assert [row["first_name"] for row in rows(archived)] == ["Ada", "Bo", "Cy"]
    excel = client.get("/exports/customers.csv?excel=true").get_data()
    assert excel.startswith(b"\xef\xbb\xbfkind,name,")
    lines = client.get("/exports/customers.jsonl?excel=true")  # CSV only: ignored
    assert lines.status_code == 200
    assert lines.headers["Content-Disposition"] == 'attachment; filename="customers.jsonl"'
    names = [json.loads(line)["name"] for line in lines.get_data(as_text=True).splitlines()]
    assert names == ["Seller's Co", "Other Co"]
    cards = client.get("/exports/contacts.vcf").get_data(as_text=True)
    assert cards.count("BEGIN:VCARD") == 2 and "EMAIL;TYPE=INTERNET,WORK:ada@own.example" in cards


def test_a_user_exports_only_what_they_may_see(app, crm, seller, records):
    browser = UiBrowser(app.test_client(), "seller@ui.example")
    page = browser.get("/exports")
    assert 'id="export-contacts"' in page
    assert 'id="export-customers"' not in page and 'id="export-interactions"' not in page
    assert '<a href="/exports">Export</a>' not in page  # the menu entry needs customer.view
    body = browser.get("/exports/contacts.csv")
    assert [row["first_name"] for row in rows(body)] == ["Ada"]
    refused = browser.get("/exports/customers.csv", status=403)
    assert "customer.view" in refused
    browser.get("/exports/interactions.jsonl", status=403)


def test_unknown_exports_formats_and_flags(ui):
    assert "There is no export nothing.csv" in ui.get("/exports/nothing.csv", status=404)
    ui.get("/exports/customers.vcf", status=404)
    ui.get("/exports/contacts.xlsx", status=404)
    ui.get("/exports/contacts.csv?include_archived=perhaps", status=400)
    ui.get("/exports/contacts.csv?excel=1", status=400)


def test_a_user_who_may_export_nothing_is_told_so(app, crm):
    ui_user(crm, "editor@ui.example", ["customer.edit"])
    browser = UiBrowser(app.test_client(), "editor@ui.example")
    page = browser.get("/exports", status=403)
    assert "You may not do this: you need the permission to view" in page
    browser.get("/exports/customers.csv", status=403)
