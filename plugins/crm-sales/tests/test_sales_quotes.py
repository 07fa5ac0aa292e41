"""Quotes: made from a deal's lines, numbered per year, moved through their statuses,
shown and printed, through the service, the pages and the API."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any

import pytest
from crm_sales.models import Quote
from crm_sales.services import opportunities, quotes
from pypdf import PdfReader
from sqlalchemy import func, select

from crm_core import NotFoundError, PermissionDenied, ValidationError
from crm_core.models import AuditEntry
from crm_core.services import customers
from crm_core.testing import (
    ApiClient,
    UiBrowser,
    api_token,
    link_of,
    make_user,
    sql_statements,
    ui_user,
)

PROBLEM = "application/problem+json"
#: Three lines: 53.97 + 200.00 + 142.36.
LINES = [
    {"description": "Support hours", "quantity": "3", "unit_price": "19.99",
     "discount_percent": "10"},
    {"description": "Installation", "quantity": "2", "unit_price": "100"},
    {"description": "Licences", "quantity": "1.5", "unit_price": "99.90",
     "discount_percent": "5"},
]
TOTAL = Decimal("396.33")
YEAR = dt.datetime.now(dt.UTC).year


def _deal(crm: Any, actor: Any, customer: Any, lines: list[dict[str, str]] | None = None,
          **extra: Any) -> Any:
    with crm.unit_of_work(actor=actor, source="test") as uow:
        return opportunities.create(uow, {
            "name": "Tools 2027", "customer_id": customer.id,
            "lines": LINES if lines is None else lines, **extra})


def _quote(crm: Any, actor: Any, deal: Any, **kwargs: Any) -> Quote:
    with crm.unit_of_work(actor=actor, source="test") as uow:
        return quotes.create_from_opportunity(uow, deal.id, **kwargs)


def _count(crm: Any) -> int:
    with crm.session_factory() as session:
        return int(session.scalar(select(func.count(Quote.id))) or 0)


@pytest.fixture
def deal(crm: Any, seller: Any, acme: Any) -> Any:
    """ACME's deal with the three :data:`LINES`, in US dollars."""
    return _deal(crm, seller, acme, currency="USD")


# -- making quotes ------------------------------------------------------------------------


def test_a_quote_copies_the_deals_lines_with_exact_totals(crm, seller, deal):
    quote = _quote(crm, seller, deal)
    assert quote.number == f"Q-{YEAR}-0001" and quote.status == "draft"
    assert quote.currency == "USD" and quote.created_by == seller.id
    assert [line.total for line in quote.lines] == [
        Decimal("53.97"), Decimal("200.00"), Decimal("142.36")]
    assert quote.total == TOTAL
    assert [line.description for line in quote.lines] == [
        "Support hours", "Installation", "Licences"]
    assert quote.valid_until == dt.datetime.now(dt.UTC).date() + quotes.VALIDITY
    with crm.unit_of_work(actor=seller, source="test") as uow:  # the deal changes, not the quote
        opportunities.update(uow, deal.id, {"lines": [{
            "product_id": None, "description": "Other", "quantity": "1", "unit_price": "1",
            "discount_percent": "0"}]})
        stored = quotes.get(uow, quote.id)
        assert stored.total == TOTAL and len(stored.lines) == 3
        assert Decimal(stored.lines[2].quantity) == Decimal("1.5")
        entry = uow.session.scalars(select(AuditEntry).where(AuditEntry.entity == "quote")).one()
    assert entry.action == "created" and entry.changes["number"] == [None, quote.number]
    assert entry.changes["total"] == [None, "396.33"]


def test_quotes_are_numbered_in_a_row_per_year(crm, seller, deal, monkeypatch):
    first, second = _quote(crm, seller, deal), _quote(crm, seller, deal)
    assert (first.number, second.number) == (f"Q-{YEAR}-0001", f"Q-{YEAR}-0002")
    next_year = dt.datetime(YEAR + 1, 1, 1, 0, 5, tzinfo=dt.UTC)
    monkeypatch.setattr(quotes, "utcnow", lambda: next_year)
    assert _quote(crm, seller, deal).number == f"Q-{YEAR + 1}-0001"
    assert _quote(crm, seller, deal).number == f"Q-{YEAR + 1}-0002"
    monkeypatch.undo()
    assert _quote(crm, seller, deal).number == f"Q-{YEAR}-0003"


def test_numbering_goes_past_9999_in_order(crm, seller, deal):
    with crm.unit_of_work(actor=seller, source="test") as uow:
        uow.session.add_all([
            Quote(number=f"Q-{YEAR}-9999", opportunity_id=deal.id),
            Quote(number=f"Q-{YEAR}-10000", opportunity_id=deal.id),
        ])
    assert _quote(crm, seller, deal).number == f"Q-{YEAR}-10001"


def test_a_number_taken_meanwhile_is_retried_in_a_savepoint(crm, seller, deal, monkeypatch):
    """Another transaction took the number between reading it and writing the quote."""
    taken = _quote(crm, seller, deal)
    real = quotes.next_number
    calls: list[str] = []

    def racing(uow: Any, year: int) -> str:
        calls.append("read")
        return taken.number if len(calls) == 1 else real(uow, year)

    monkeypatch.setattr(quotes, "next_number", racing)
    quote = _quote(crm, seller, deal)
    assert len(calls) == 2 and quote.number == f"Q-{YEAR}-0002"
    assert _count(crm) == 2


def test_a_deal_without_lines_is_refused(crm, seller, acme):
    empty = _deal(crm, seller, acme, lines=[])
    with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=seller) as uow:
        quotes.create_from_opportunity(uow, empty.id)
    assert set(refused.value.messages) == {"lines"}
    assert _count(crm) == 0


def test_validity_is_checked(crm, seller, deal):
    assert _quote(crm, seller, deal, valid_until="2099-12-31").valid_until == dt.date(2099, 12, 31)
    assert _quote(crm, seller, deal, valid_until=dt.date(2099, 1, 2)).valid_until == dt.date(
        2099, 1, 2)
    for bad in ("2001-01-01", "tomorrow", dt.date(2001, 1, 1), 17):
        with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=seller) as uow:
            quotes.create_from_opportunity(uow, deal.id, bad)
        assert set(refused.value.messages) == {"valid_until"}
    assert _count(crm) == 2


# -- statuses -----------------------------------------------------------------------------


def test_a_quote_is_sent_then_accepted_and_no_other_way(crm, seller, deal):
    quote = _quote(crm, seller, deal)
    with crm.unit_of_work(actor=seller, source="test") as uow:
        assert quotes.allowed_statuses(quote) == ("sent",)
        for wrong in ("accepted", "rejected", "draft"):
            if wrong == "draft":
                assert quotes.set_status(uow, quote.id, wrong).status == "draft"  # no change
                continue
            with pytest.raises(ValidationError) as refused:
                quotes.set_status(uow, quote.id, wrong)
            assert set(refused.value.messages) == {"status"}
        sent = quotes.set_status(uow, quote.id, "sent")
        assert sent.status == "sent"
        assert set(quotes.allowed_statuses(sent)) == {"accepted", "rejected"}
        with pytest.raises(ValidationError):
            quotes.set_status(uow, quote.id, "draft")
        assert quotes.set_status(uow, quote.id, "accepted").status == "accepted"
        for wrong in ("rejected", "sent", "draft", "won", None):
            with pytest.raises(ValidationError) as refused:
                quotes.set_status(uow, quote.id, wrong)
            assert set(refused.value.messages) == {"status"}
        changes = list(uow.session.scalars(
            select(AuditEntry.changes).where(AuditEntry.entity == "quote",
                                             AuditEntry.action == "status_changed")
            .order_by(AuditEntry.id)))
    assert changes == [{"status": ["draft", "sent"]}, {"status": ["sent", "accepted"]}]


def test_a_sent_quote_may_be_rejected(crm, seller, deal):
    quote = _quote(crm, seller, deal)
    with crm.unit_of_work(actor=seller, source="test") as uow:
        quotes.set_status(uow, quote.id, "sent")
        rejected = quotes.set_status(uow, quote.id, "rejected")
        assert rejected.status == "rejected" and quotes.allowed_statuses(rejected) == ()


# -- who may see and make them ----------------------------------------------------------------


def test_quotes_follow_the_deals_visibility_and_permissions(crm, seller, acme, deal):
    quote = _quote(crm, seller, deal)
    other = make_user(crm, "other@sales.example", ["sales.deal.view", "sales.deal.edit"],
                      visibility="own")
    viewer = make_user(crm, "viewer@sales.example", ["sales.deal.view"])
    with crm.unit_of_work(actor=other, source="test") as uow:
        with pytest.raises(NotFoundError):
            quotes.get(uow, quote.id)
        with pytest.raises(NotFoundError):
            quotes.create_from_opportunity(uow, deal.id)
        with pytest.raises(NotFoundError):
            quotes.of_deal(uow, deal.id)
        assert quotes.of_customer(uow, acme.id) == []
        assert quotes.count_of_customer(uow, acme.id) == 0
    with crm.unit_of_work(actor=viewer, source="test") as uow:
        assert quotes.get(uow, quote.id).number == quote.number
        assert [q.id for q in quotes.of_deal(uow, deal.id)] == [quote.id]
        with pytest.raises(PermissionDenied):
            quotes.create_from_opportunity(uow, deal.id)
        with pytest.raises(PermissionDenied):
            quotes.set_status(uow, quote.id, "sent")
    with crm.unit_of_work(actor=seller, source="test") as uow:
        for ident in (2**40, "abc", -1, quote.id + 1000):
            with pytest.raises(NotFoundError):
                quotes.get(uow, ident)
            with pytest.raises(NotFoundError):
                quotes.create_from_opportunity(uow, ident)


def test_a_customers_quotes_come_newest_first(crm, seller, acme, deal):
    first, second = _quote(crm, seller, deal), _quote(crm, seller, deal)
    with crm.unit_of_work(source="test") as uow:
        others = customers.create(uow, {"name": "Other Corp"})
    _quote(crm, seller, _deal(crm, seller, others))
    with crm.unit_of_work(actor=seller, source="test") as uow:
        assert [q.id for q in quotes.of_customer(uow, acme.id)] == [second.id, first.id]
        assert [q.id for q in quotes.of_customer(uow, acme.id, before_id=second.id)] == [
            first.id]
        assert quotes.count_of_customer(uow, acme.id) == 2


# -- pages ----------------------------------------------------------------------------------


@pytest.fixture
def seller_ui(crm: Any, client: Any, seller: Any) -> UiBrowser:
    """The UI as a seller with every permission."""
    ui_user(crm, "ui-seller@sales.example")
    return UiBrowser(client, "ui-seller@sales.example")


def test_make_a_quote_opens_its_page(crm, seller_ui, deal, acme):
    response = seller_ui.post(f"/sales/deals/{deal.id}/quotes", {"valid_until": "2099-06-30"})
    with crm.session_factory() as session:
        quote = session.scalars(select(Quote)).one()
    assert response.headers["Location"].endswith(f"/sales/quotes/{quote.id}")
    page = seller_ui.get(f"/sales/quotes/{quote.id}")
    assert quote.number in page and "ACME Tools GmbH" in page and "396.33" in page
    assert f'href="/sales/deals/{deal.id}"' in page
    assert f'href="/customers/{acme.id}"' in page
    assert f'href="/sales/quotes/{quote.id}.pdf"' in page
    assert 'value="sent"' in page and 'value="accepted"' not in page
    assert "53.97" in page and "142.36" in page and "Support hours" in page


def test_the_status_buttons_move_the_quote(crm, seller, seller_ui, deal):
    quote = _quote(crm, seller, deal)
    seller_ui.post(f"/sales/quotes/{quote.id}/status", {"status": "sent"})
    page = seller_ui.get(f"/sales/quotes/{quote.id}")
    assert 'value="accepted"' in page and 'value="rejected"' in page and 'value="sent"' not in page
    refused = seller_ui.post(f"/sales/quotes/{quote.id}/status", {"status": "draft"}, status=422)
    assert "A draft quote can only be sent" in refused.get_data(as_text=True)
    seller_ui.post(f"/sales/quotes/{quote.id}/status", {"status": "won"}, status=422)
    seller_ui.post(f"/sales/quotes/{quote.id}/status", {"status": "accepted"})
    page = seller_ui.get(f"/sales/quotes/{quote.id}")
    assert "Accepted" in page and 'name="status"' not in page


def test_make_a_quote_refuses_bad_input_on_a_page_of_its_own(crm, seller, seller_ui, acme, deal):
    empty = _deal(crm, seller, acme, lines=[])
    page = seller_ui.post(f"/sales/deals/{empty.id}/quotes", {}, status=422).get_data(
        as_text=True)
    assert "no lines to quote" in page and f'href="/sales/deals/{empty.id}"' in page
    page = seller_ui.post(f"/sales/deals/{deal.id}/quotes", {"valid_until": "1999-01-01"},
                          status=422).get_data(as_text=True)
    assert "Must not be in the past." in page
    seller_ui.post(f"/sales/deals/{deal.id}/quotes", {"valid_until": "soon\x00"}, status=422)
    seller_ui.post("/sales/deals/999999/quotes", {}, status=404)
    seller_ui.post(f"/sales/deals/{2**40}/quotes", {}, status=404)
    assert _count(crm) == 0


def test_quote_pages_need_their_permissions(crm, app, seller, deal):
    quote = _quote(crm, seller, deal)
    ui_user(crm, "viewer@sales.example", ["sales.deal.view", "customer.view"])
    viewer = UiBrowser(app.test_client(), "viewer@sales.example")
    page = viewer.get(f"/sales/quotes/{quote.id}")
    assert quote.number in page and 'name="status"' not in page
    denied = viewer.post(f"/sales/deals/{deal.id}/quotes", {}, status=403)
    assert "sales.deal.edit" in denied.get_data(as_text=True)
    viewer.post(f"/sales/quotes/{quote.id}/status", {"status": "sent"}, status=403)
    ui_user(crm, "own@sales.example", ["sales.deal.view", "sales.deal.edit"], visibility="own")
    own = UiBrowser(app.test_client(), "own@sales.example")
    own.get(f"/sales/quotes/{quote.id}", status=404)
    own.get(f"/sales/quotes/{quote.id}.pdf", status=404)
    own.post(f"/sales/deals/{deal.id}/quotes", {}, status=404)
    own.post(f"/sales/quotes/{quote.id}/status", {"status": "sent"}, status=404)
    viewer.get("/sales/quotes/999999", status=404)
    with crm.session_factory() as session:
        assert session.get(Quote, quote.id).status == "draft"
    assert _count(crm) == 1


def _pdf_text(response: Any) -> str:
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
    return " ".join(text.split())


def test_the_quote_prints_as_a_pdf(crm, seller, seller_ui, acme, deal):
    with crm.unit_of_work(source="test") as uow:
        customers.update(uow, acme.id, {"street": "Hauptstraße 5", "postal_code": "10115",
                                        "city": "Berlin"})
    quote = _quote(crm, seller, deal, valid_until="2099-06-30")
    response = seller_ui.client.get(f"/sales/quotes/{quote.id}.pdf")
    text = _pdf_text(response)
    assert response.headers["Content-Disposition"] == (
        f'inline; filename="quote-{quote.number}.pdf"')
    assert quote.number in text and "ACME Tools GmbH" in text and "396.33" in text
    assert "Hauptstraße 5" in text and "Berlin" in text and "2099" in text
    assert "Support hours" in text and "USD" in text
    assert "Mark as sent" not in text and "Sign out" not in text


def test_the_quote_page_reads_a_fixed_number_of_queries(crm, seller, seller_ui, acme):
    small = _quote(crm, seller, _deal(crm, seller, acme, lines=LINES[:1]))
    large = _quote(crm, seller, _deal(crm, seller, acme, lines=LINES * 8))
    seller_ui.get(f"/sales/quotes/{small.id}")
    with sql_statements(crm) as few:
        seller_ui.get(f"/sales/quotes/{small.id}")
    with sql_statements(crm) as many:
        seller_ui.get(f"/sales/quotes/{large.id}")
    assert len(many) == len(few)


def test_the_customer_page_has_a_quotes_tab(crm, seller, seller_ui, acme, deal, app,
                                             monkeypatch):
    from crm_sales.parts import catalogue as catalogue_part

    older, quote = _quote(crm, seller, deal), _quote(crm, seller, deal)
    page = seller_ui.get(f"/customers/{acme.id}")
    assert f'href="/customers/{acme.id}?tab=quotes"' in page
    assert 'Quotes <span class="count">2</span>' in page
    tab = seller_ui.get(f"/customers/{acme.id}?tab=quotes")
    assert quote.number in tab and "Tools 2027" in tab and f"/sales/quotes/{quote.id}" in tab
    monkeypatch.setattr(catalogue_part, "TAB_PAGE", 1)
    tab = seller_ui.get(f"/customers/{acme.id}?tab=quotes")
    assert quote.number in tab and older.number not in tab
    second = seller_ui.get(link_of(tab))
    assert older.number in second and quote.number not in second
    seller_ui.get(f"/customers/{acme.id}?tab=quotes&quotes_before=abc", status=400)
    ui_user(crm, "clerk@sales.example", ["customer.view"])
    clerk = UiBrowser(app.test_client(), "clerk@sales.example")
    assert "tab=quotes" not in clerk.get(f"/customers/{acme.id}")


# -- the API --------------------------------------------------------------------------------


def test_quotes_through_the_api(crm, client, seller, deal, acme):
    api = ApiClient(client, api_token(crm, seller))
    made = api.post(f"/sales/opportunities/{deal.id}/quotes", json={"valid_until": "2099-01-31"})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert body["number"] == f"Q-{YEAR}-0001" and body["total"] == "396.33"
    assert body["currency"] == "USD" and body["valid_until"] == "2099-01-31"
    assert [line["total"] for line in body["lines"]] == ["53.97", "200.00", "142.36"]
    assert made.headers["Location"].endswith(f"/api/v1/sales/quotes/{body['id']}")
    assert api.post(f"/sales/opportunities/{deal.id}/quotes").status_code == 201  # no body
    assert api.get(f"/sales/quotes/{body['id']}").get_json()["status"] == "draft"
    sent = api.post(f"/sales/quotes/{body['id']}/status", json={"status": "sent"})
    assert sent.status_code == 200 and sent.get_json()["status"] == "sent"

    refused = api.post(f"/sales/quotes/{body['id']}/status", json={"status": "draft"})
    assert refused.status_code == 422 and refused.mimetype == PROBLEM
    assert set(refused.get_json()["errors"]) == {"status"}
    empty = _deal(crm, seller, acme, lines=[])
    no_lines = api.post(f"/sales/opportunities/{empty.id}/quotes")
    assert no_lines.status_code == 422 and set(no_lines.get_json()["errors"]) == {"lines"}
    unknown = api.post(f"/sales/opportunities/{deal.id}/quotes", json={"total": "1"})
    assert unknown.status_code == 422 and set(unknown.get_json()["errors"]) == {"total"}
    for path in ("/sales/quotes/999999", "/sales/quotes/x", f"/sales/quotes/{2**40}"):
        missing = api.get(path)
        assert missing.status_code == 404 and missing.mimetype == PROBLEM
    assert api.post("/sales/opportunities/999999/quotes").status_code == 404
    assert api.post(f"/sales/quotes/{body['id']}/status", data="sent").status_code == 415
    assert ApiClient(client, None).get(f"/sales/quotes/{body['id']}").status_code == 401


def test_the_api_needs_the_deal_permissions(crm, client, seller, deal):
    quote = _quote(crm, seller, deal)
    viewer = ApiClient(client, api_token(crm, make_user(crm, "v@sales.example",
                                                        ["sales.deal.view"])))
    assert viewer.get(f"/sales/quotes/{quote.id}").status_code == 200
    denied = viewer.post(f"/sales/opportunities/{deal.id}/quotes")
    assert denied.status_code == 403 and denied.mimetype == PROBLEM
    assert viewer.post(f"/sales/quotes/{quote.id}/status",
                       json={"status": "sent"}).status_code == 403
    own = ApiClient(client, api_token(crm, make_user(
        crm, "o@sales.example", ["sales.deal.view", "sales.deal.edit"], visibility="own")))
    assert own.get(f"/sales/quotes/{quote.id}").status_code == 404
    assert own.post(f"/sales/opportunities/{deal.id}/quotes").status_code == 404
    assert _count(crm) == 1


def test_the_deal_page_partial_lists_quotes_and_offers_make_a_quote(crm, app, seller, deal):
    from crm_sales.parts.catalogue import deal_quotes
    from flask import render_template

    quote = _quote(crm, seller, deal)
    viewer = make_user(crm, "partial@sales.example", ["sales.deal.view"])
    for actor, can_make in ((seller, True), (viewer, False)):
        with app.test_request_context(), crm.unit_of_work(actor=actor, source="ui") as uow:
            html = render_template("crm_sales/quotes/_deal_quotes.html",
                                   **deal_quotes(uow, deal.id))
        assert quote.number in html and f'href="/sales/quotes/{quote.id}"' in html
        assert (f'action="/sales/deals/{deal.id}/quotes"' in html) is can_make


def test_a_team_sees_its_members_quotes(crm, app, seller):
    from crm_core.models import Team

    with crm.session_factory() as session, session.begin():
        team = Team(name="North")
        session.add(team)
    ui_user(crm, "lead@sales.example", None, visibility="team", team=team)
    mate = make_user(crm, "mate@sales.example", None, visibility="own", team=team)
    with crm.unit_of_work(actor=seller, source="test") as uow:
        north = customers.create(uow, {"name": "North AB", "owner_id": mate.id})
    ours = _quote(crm, mate, _deal(crm, mate, north))
    theirs = _quote(crm, seller, _deal(crm, seller, north))
    lead = UiBrowser(app.test_client(), "lead@sales.example")
    assert 'Quotes <span class="count">1</span>' in lead.get(f"/customers/{north.id}")
    tab = lead.get(f"/customers/{north.id}?tab=quotes")
    assert ours.number in tab and theirs.number not in tab
    lead.get(f"/sales/quotes/{ours.id}")
    lead.get(f"/sales/quotes/{theirs.id}", status=404)
