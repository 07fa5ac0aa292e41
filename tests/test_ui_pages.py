"""The bundled UI through Flask's test client: every page, its forms, bad input, denials.

Users sign in with a password and post forms with the CSRF token of the page, as a
browser does. Plugins' navigation entries, customer panels and dashboard widgets come
from a plugin registered in the test.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint
from pypdf import PdfReader
from sqlalchemy import select
from ui_support import count_rows

from crm_core.extensions import (
    CustomerTab,
    ListColumn,
    MenuItem,
    Panel,
    TimelineEntry,
    TimelineRenderer,
)
from crm_core.models import AuditEntry, Customer, Interaction, SavedView
from crm_core.services import contacts, customers, interactions
from crm_core.testing import UiBrowser, link_of, plugin_module, ui_user

SELLER_PERMISSIONS = [
    "customer.view", "customer.edit", "contact.view", "interaction.view", "interaction.edit",
]


@pytest.fixture
def crm_plugin_modules(tmp_path: Path) -> list[Any]:
    """A plugin with a page, a navigation entry, a customer panel and a dashboard widget."""
    templates = tmp_path / "plugin-templates" / "ui_probe"
    templates.mkdir(parents=True)
    (templates / "panel.html").write_text("<p class=probe-panel>Open invoices: {{ count }}</p>")
    (templates / "invoice.html").write_text(
        "<p class=probe-invoice>Invoice {{ entry.id }}: {{ entry.extra.amount }} EUR</p>"
    )
    (templates / "deals.html").write_text(
        "<ul class=probe-deals>{% for deal in deals %}<li>{{ deal }}</li>{% endfor %}</ul>"
    )
    (templates / "widget.html").write_text(
        "<ul class=probe-widget>{% for task in tasks %}<li>{{ task }}</li>{% endfor %}</ul>"
    )
    probe = Blueprint("ui_probe", __name__, template_folder=str(templates.parent))
    probe.add_url_rule("/probe/reports", "reports", lambda: "reports page")

    def fail(uow: Any, entity: str, batch: Any) -> None:
        if any(change.data.get("name") == "Explode Ltd" for change in batch):
            raise RuntimeError("the plugin broke")

    return [
        plugin_module(
            "ui_probe",
            core_api=">=1.0",
            crm_register_blueprints=lambda: [probe],
            crm_menu_items=lambda actor: [MenuItem("Reports", "ui_probe.reports", order=50)],
            crm_customer_panels=lambda customer, actor: [
                Panel("invoices", "Invoices", "ui_probe/panel.html", {"count": 3})
            ],
            crm_customer_tabs=_deal_tabs,
            crm_dashboard_widgets=lambda actor: [
                Panel("tasks", "My open tasks", "ui_probe/widget.html",
                      {"tasks": [f"Call back for {actor.email}"]})
            ],
            crm_validate=fail,
            crm_list_columns=_probe_columns,
            crm_settings_pages=lambda actor: [
                MenuItem("Probe settings", "ui_probe.reports"),
                MenuItem("Hidden settings", "ui_probe.reports", permission="probe.secret"),
            ],
            crm_timeline_entries=_invoice_entries,
            crm_timeline_renderers=lambda: [
                TimelineRenderer("ui_probe.invoice", "ui_probe/invoice.html")
            ],
        )
    ]


#: The customers whose *Deals* tab was loaded, in order (a tab loads only when opened).
DEAL_TAB_LOADS: list[int] = []


def _deal_tabs(customer: Any, actor: Any) -> list[CustomerTab]:
    def load() -> dict[str, Any]:
        DEAL_TAB_LOADS.append(customer.id)
        return {"deals": [f"Renewal for {customer.name}", "<Upsell>"]}

    return [CustomerTab("probe_deals", "Probe deals", "ui_probe/deals.html", load, count=2)]


def _probe_columns(entity: str, actor: Any) -> list[ListColumn]:
    if entity == "customer":
        return [ListColumn("invoices", "Open invoices",
                           lambda records: {r.id: f"{len(r.name)} open" for r in records})]
    return [ListColumn("birthday", "Birthday", lambda records: {r.id: "1 May" for r in records})]


def _invoice_entries(session, actor, customer_id, before, limit, types, channels):
    if types is not None and "ui_probe.invoice" not in types:
        return None
    moment = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
    return [TimelineEntry("ui_probe.invoice", 7, moment, "Invoice 7", extra={"amount": 1250})]


@pytest.fixture
def admin(ui: UiBrowser) -> UiBrowser:
    return ui


@pytest.fixture
def acme(crm: Any) -> Customer:
    with crm.unit_of_work(source="test") as uow:
        customer = customers.create(
            uow,
            {"name": "ACME Tools GmbH", "email": "info@acme.example", "city": "Berlin",
             "country": "DE", "phone": "+49 30 1234567", "lifecycle_stage": "customer",
             "tags": ["vip"]},
        )
        contacts.create(
            uow,
            {"customer_id": customer.id, "first_name": "Ada", "last_name": "Kowalska",
             "job_title": "Buyer", "emails": [{"label": "work", "email": "ada@acme.example"}]},
        )
        interactions.create(
            uow,
            {"customer_id": customer.id, "channel": "email", "subject": "Price list sent",
             "occurred_at": "2026-11-02T10:00:00+00:00"},
        )
    return customer


# -- signing in, navigation, dashboard -----------------------------------------------------------


def test_pages_send_anonymous_visitors_to_sign_in_and_back(client, acme):
    for path in ("/", "/customers", f"/customers/{acme.id}", "/customers/new"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def test_the_dashboard_shows_counts_recent_interactions_charts_and_widgets(admin, acme):
    page = admin.get("/")
    assert "<dt>Customers</dt><dd>1</dd>" in page
    assert "<dt>Contacts</dt><dd>1</dd>" in page
    assert "Price list sent" in page and f'href="/customers/{acme.id}"' in page
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" role="img"') == 2
    assert "Interactions per week by channel" in page
    assert "Customers by lifecycle stage" in page
    assert '<ul class=probe-widget><li>Call back for ui-admin@example.com</li></ul>' in page
    assert '<a href="/probe/reports">Reports</a>' in page  # the plugin's navigation entry
    assert '<a href="/" aria-current="page">Dashboard</a>' in page
    assert admin.get("/static/ui/crm_core/ui.css").startswith("/* crm-core's UI")


def test_the_dashboard_writes_weeks_and_stages_as_the_language_does(crm, admin, acme):
    from babel.dates import format_skeleton

    from crm_core.web.ui.dashboard import WEEKS, _week_start

    with crm.unit_of_work(source="test") as uow:
        interactions.create(uow, {"customer_id": acme.id, "channel": "call", "subject": "Now",
                                  "occurred_at": dt.datetime.now(dt.UTC).isoformat()})
    monday = _week_start(dt.datetime.now(dt.UTC)).date()
    first = monday - dt.timedelta(weeks=WEEKS - 1)
    english = admin.get("/")
    for day in (first, monday):
        assert f">{format_skeleton('MMMd', day, locale='en')}</text>" in english  # "Dec 2"
    assert "Customers by lifecycle stage" in english and ">Prospect</text>" in english
    assert "12 categories" in english and "Call: 1 in total" in english  # the chart's summary
    assert '<span class="badge channel-call">call</span>' in english  # a badge's word
    german = admin.client.get("/", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert '<html lang="de">' in german
    assert f">{format_skeleton('MMMd', first, locale='de')}</text>" in german  # "2. Dez."
    assert f">{format_skeleton('MMMd', first, locale='en')}</text>" not in german
    assert "…</text>" not in german  # longer names: every other week labelled, none cut
    listed = admin.get("/customers?stage=customer")
    assert '<span class="badge stage-customer">customer</span>' in listed
    assert '<option value="customer" selected>Customer</option>' in listed
    assert "<h1>Customers · Customer</h1>" in listed


def test_a_user_with_no_permissions_gets_an_explanation_not_an_error(crm, client):
    ui_user(crm, "nobody@ui.example", [])
    page = UiBrowser(client, "nobody@ui.example").get("/")
    assert "nothing to see here yet" in page
    assert ">Customers</a>" not in page


# -- the customer list ----------------------------------------------------------------------------


def test_the_list_searches_filters_sorts_and_pages_with_a_cursor(crm, admin, acme):
    with crm.unit_of_work(source="test") as uow:
        customers.bulk_create(
            uow, [{"name": f"Zeta {number:02d} AB", "city": "Malmö"} for number in range(55)]
        )
    first = admin.get("/customers")
    assert first.count('<th scope="row">') == 50
    assert "ACME Tools GmbH" in first and "Zeta 48 AB" in first and "Zeta 49 AB" not in first
    following = link_of(first)
    second = admin.get(following)
    assert second.count('<th scope="row">') == 6 and "Zeta 54 AB" in second
    assert 'rel="next"' not in second and "First page" in second
    found = admin.get("/customers?q=acme")
    assert found.count('<th scope="row">') == 1 and "ACME Tools GmbH" in found
    assert admin.get("/customers?stage=customer").count('<th scope="row">') == 1
    newest = admin.get("/customers?sort=newest")
    assert newest.index("Zeta 54 AB") < newest.index("Zeta 10 AB") and "Zeta 00" not in newest
    assert "No customers match these filters" in admin.get("/customers?q=nothing-like-it")
    admin.get("/customers?sort=bogus", status=400)
    admin.get("/customers?cursor=not-a-cursor", status=400)


def test_a_seller_lists_and_opens_only_what_they_may_see(crm, client, acme):
    seller = ui_user(crm, "seller@ui.example", SELLER_PERMISSIONS, visibility="own")
    with crm.unit_of_work(source="test") as uow:
        mine = customers.create(uow, {"name": "Seller's Own AB", "owner_id": seller.id})
    browser = UiBrowser(client, "seller@ui.example")
    page = browser.get("/customers")
    assert "Seller&#39;s Own AB" in page and "ACME" not in page
    browser.get(f"/customers/{mine.id}")
    assert "There is no customer" in browser.get(f"/customers/{acme.id}", status=404)


# -- the customer page and quick logging ----------------------------------------------------------


def test_plugins_add_list_columns_and_render_their_timeline_entries(admin, acme):
    listed = admin.get("/customers")
    assert '<th scope="col">Open invoices</th>' in listed
    assert '<td class="column-invoices">15 open</td>' in listed  # len("ACME Tools GmbH")
    people = admin.get("/contacts")
    assert '<th scope="col">Birthday</th>' in people
    assert '<td class="column-birthday">1 May</td>' in people
    settings = admin.get("/admin")
    assert '<a href="/probe/reports">Probe settings</a>' in settings
    assert "Hidden settings" not in settings  # its permission is not registered, nobody has it
    page = admin.get(f"/customers/{acme.id}")
    assert "<p class=probe-invoice>Invoice 7: 1250 EUR</p>" in page
    timeline = page[page.index('class="timeline"'):]
    assert timeline.index("probe-invoice") < timeline.index("Price list sent")  # newer


def test_the_customer_page_is_a_360_view(admin, acme):
    page = admin.get(f"/customers/{acme.id}")
    assert "<h1>ACME Tools GmbH</h1>" in page
    assert 'href="mailto:info@acme.example"' in page and 'href="tel:+49301234567"' in page
    assert "Ada Kowalska" in page and "ada@acme.example" in page
    assert "Price list sent" in page
    assert "<p class=probe-panel>Open invoices: 3</p>" in page
    for channel in ("call", "note", "email", "meeting"):
        assert f'name="channel" value="{channel}"' in page
    admin.get("/customers/999999", status=404)


def test_a_plugins_tab_opens_in_place_of_the_timeline_and_loads_only_then(admin, acme):
    DEAL_TAB_LOADS.clear()
    page = admin.get(f"/customers/{acme.id}")
    tabs = page[page.index('<nav class="tabs'):page.index("</nav>", page.index('<nav class="tabs'))]
    assert f'href="/customers/{acme.id}" aria-current="page">Timeline</a>' in tabs
    assert (f'href="/customers/{acme.id}?tab=probe_deals">Probe deals <span class="count">2</span>'
            in tabs)
    assert "Price list sent" in page and DEAL_TAB_LOADS == []  # not opened: not loaded
    page = admin.get(f"/customers/{acme.id}?tab=probe_deals")
    assert [acme.id] == DEAL_TAB_LOADS
    assert 'aria-current="page">Probe deals' in page
    assert '<h2 id="tab-title">Probe deals</h2>' in page
    assert "<li>Renewal for ACME Tools GmbH</li><li>&lt;Upsell&gt;</li>" in page
    assert "Price list sent" not in page  # the timeline is not shown (nor read)
    assert "<p class=probe-panel>" in page  # the side column stays
    admin.get(f"/customers/{acme.id}?tab=nope", status=404)


def test_logging_a_call_puts_it_at_the_top_of_the_timeline(crm, admin, acme):
    response = admin.post(
        f"/customers/{acme.id}/interactions", {"channel": "call", "subject": "Renewal call"}
    )
    assert response.headers["Location"] == f"/customers/{acme.id}"
    page = admin.get(f"/customers/{acme.id}")
    assert "Call logged." in page
    timeline = page[page.index('class="timeline"'):]
    assert timeline.index("Renewal call") < timeline.index("Price list sent")
    with crm.session_factory() as session:
        logged = session.scalar(select(Interaction).where(Interaction.subject == "Renewal call"))
        assert logged.channel == "call" and logged.user_id is not None
        source = session.scalar(
            select(AuditEntry.source).where(
                AuditEntry.entity == "interaction", AuditEntry.entity_id == str(logged.id)
            )
        )
    assert source == "ui"


def test_bad_quick_log_input_is_explained_and_nothing_is_saved(crm, admin, acme):
    before = count_rows(crm, Interaction)
    response = admin.post(
        f"/customers/{acme.id}/interactions",
        {"channel": "telepathy", "subject": "x" * 501, "contact_id": "999999"},
        status=422,
    )
    page = response.get_data(as_text=True)
    assert 'id="subject-errors"' in page and 'aria-invalid="true"' in page
    assert "telepathy" in page or "channel" in page
    response = admin.post(
        f"/customers/{acme.id}/interactions",
        {"channel": "call", "subject": "Later", "occurred_at": "next tuesday"},
        status=422,
    )
    assert "Give a date and time" in response.get_data(as_text=True)
    assert count_rows(crm, Interaction) == before


# -- create and edit ------------------------------------------------------------------------------


def test_a_new_customer_form_explains_each_bad_field_and_saves_nothing(crm, admin):
    response = admin.post(
        "/customers/new", {"name": "", "email": "not-an-email", "country": "Germany"}, status=422
    )
    page = response.get_data(as_text=True)
    for name in ("name", "email", "country"):
        assert f'id="{name}-errors"' in page, name
    assert 'value="not-an-email"' in page  # what was typed stays
    assert "nothing was saved" in page
    assert count_rows(crm, Customer) == 0


def test_a_new_customer_is_created_and_opened(crm, admin):
    response = admin.post(
        "/customers/new",
        {"kind": "company", "name": "Nordic Fika AB", "email": "hej@fika.example",
         "country": "SE", "lifecycle_stage": "prospect", "tags": "coffee, wholesale"},
    )
    with crm.session_factory() as session:
        created = session.scalar(select(Customer).where(Customer.name == "Nordic Fika AB"))
        assert created.tags == ["coffee", "wholesale"] and created.lifecycle_stage == "prospect"
    assert response.headers["Location"] == f"/customers/{created.id}"
    assert "Nordic Fika AB was created." in admin.get(f"/customers/{created.id}")


def test_a_failing_plugin_saves_nothing_and_says_so(crm, admin):
    response = admin.post("/customers/new", {"name": "Explode Ltd"}, status=500)
    assert "nothing was saved" in response.get_data(as_text=True)
    assert count_rows(crm, Customer) == 0


def test_editing_after_someone_else_saved_shows_both_versions(crm, admin, acme):
    form = admin.get(f"/customers/{acme.id}/edit")
    assert 'name="version" value="1"' in form and 'value="ACME Tools GmbH"' in form
    with crm.unit_of_work(source="test") as uow:
        customers.update(uow, acme.id, {"city": "Hamburg"})
    mine = {"name": "ACME Tools GmbH", "city": "Munich", "country": "DE", "version": "1",
            "kind": "company", "lifecycle_stage": "customer", "tags": "vip"}
    response = admin.post(f"/customers/{acme.id}/edit", mine, status=409)
    page = response.get_data(as_text=True)
    assert "Someone else saved ACME Tools GmbH" in page
    assert re.search(r"<th scope=\"row\">City</th><td>Hamburg</td><td>Munich</td>", page)
    assert 'name="version" value="2"' in page
    admin.post(f"/customers/{acme.id}/edit", {**mine, "version": "2"})
    with crm.session_factory() as session:
        assert session.get(Customer, acme.id).city == "Munich"


def test_edit_form_errors_keep_the_input(crm, admin, acme):
    response = admin.post(
        f"/customers/{acme.id}/edit", {"name": "", "version": "1", "email": "x@"}, status=422
    )
    page = response.get_data(as_text=True)
    assert 'id="name-errors"' in page and 'id="email-errors"' in page and 'value="x@"' in page
    with crm.session_factory() as session:
        assert session.get(Customer, acme.id).name == "ACME Tools GmbH"


# -- permissions ----------------------------------------------------------------------------------


def test_pages_and_actions_need_their_permissions(crm, client, acme):
    ui_user(crm, "viewer@ui.example", ["customer.view", "interaction.view"])
    viewer = UiBrowser(client, "viewer@ui.example")
    page = viewer.get(f"/customers/{acme.id}")
    assert "Log an interaction" not in page and ">Edit</a>" not in page
    assert "New customer" not in viewer.get("/customers")
    assert "customer.edit" in viewer.get("/customers/new", status=403)
    viewer.get(f"/customers/{acme.id}/edit", status=403)
    viewer.post(f"/customers/{acme.id}/interactions", {"channel": "call"}, status=403)
    viewer.post("/customers/new", {"name": "Sneaky Ltd"}, status=403)
    assert count_rows(crm, Customer) == 1


# -- printouts ------------------------------------------------------------------------------------


def _pdf_text(response: Any) -> str:
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
    return " ".join(text.split())  # words, whatever the lines they were set on


def test_the_customer_page_prints_as_a_pdf(admin, acme):
    response = admin.client.get(f"/customers/{acme.id}.pdf")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f'inline; filename="customer-{acme.id}.pdf"'
    text = _pdf_text(response)
    assert "ACME Tools GmbH" in text and "Ada Kowalska" in text and "Price list sent" in text
    assert "Log an interaction" not in text and "Sign out" not in text  # the print stylesheet
    assert f'href="/customers/{acme.id}.pdf"' in admin.get(f"/customers/{acme.id}")
    admin.get("/customers/999999.pdf", status=404)


def test_a_filtered_list_prints_as_a_pdf(crm, admin, acme):
    with crm.unit_of_work(source="test") as uow:
        customers.create(uow, {"name": "Other Lead Ltd"})
    text = _pdf_text(admin.client.get("/customers.pdf?stage=customer"))
    assert "ACME Tools GmbH" in text and "Other Lead Ltd" not in text
    assert 'href="/customers.pdf?stage=customer"' in admin.get("/customers?stage=customer")


def test_printouts_need_the_permission_to_see(crm, client, acme):
    ui_user(crm, "blind@ui.example", [])
    blind = UiBrowser(client, "blind@ui.example")
    blind.get("/customers.pdf", status=403)
    blind.get(f"/customers/{acme.id}.pdf", status=403)


def test_a_server_without_pango_says_what_to_install(admin, acme, monkeypatch):
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # as if its libraries failed to load
    page = admin.get(f"/customers/{acme.id}.pdf", status=503)
    assert "libpango-1.0-0" in page


def test_what_no_database_stores_is_refused_on_both_engines(crm, admin, acme):
    response = admin.post("/customers/new", {"name": "Nul\x00 Ltd", "owner_id": "99999999999"},
                          status=422)
    page = response.get_data(as_text=True)
    assert "Must not contain NUL characters." in page and 'id="owner_id-errors"' in page
    response = admin.post(f"/customers/{acme.id}/edit", {"name": "ACME", "version": "1",
                                                         "city": "B\x00erlin"}, status=422)
    assert 'id="city-errors"' in response.get_data(as_text=True)
    admin.post(f"/customers/{acme.id}/interactions",
               {"channel": "call", "subject": "x", "contact_id": "4294967296"}, status=422)
    assert count_rows(crm, Customer) == 1 and count_rows(crm, Interaction) == 1


# -- saved views ----------------------------------------------------------------------------------


def test_a_user_saves_views_of_the_list_and_only_sees_their_own(crm, client, admin, acme):
    response = admin.post("/customers/views", {"name": "Berlin customers",
                                               "query": "stage=customer&q=&cursor=abc"})
    assert response.headers["Location"] == "/customers?stage=customer"
    page = admin.get("/customers?stage=customer")
    assert 'href="/customers?stage=customer" aria-current="true">Berlin customers</a>' in page
    admin.post("/customers/views", {"name": "Berlin customers", "query": "sort=newest"})
    assert 'href="/customers?sort=newest"' in admin.get("/customers")  # replaced, not doubled
    with crm.session_factory() as session:
        views = session.scalars(select(SavedView)).all()
        assert [(view.name, view.query) for view in views] == [("Berlin customers",
                                                                 "sort=newest")]
    refused = admin.post("/customers/views", {"name": " ", "query": "stage=lead"})
    assert refused.headers["Location"] == "/customers?stage=lead"
    assert "The view was not saved: Must not be empty." in admin.get("/customers?stage=lead")
    other_client = client.application.test_client()  # a second browser
    ui_user(crm, "other@ui.example", ["customer.view"])
    other = UiBrowser(other_client, "other@ui.example")
    assert "Berlin customers" not in other.get("/customers")
    other.post(f"/customers/views/{views[0].id}/delete", {}, status=404)
    admin.post(f"/customers/views/{views[0].id}/delete", {})
    assert count_rows(crm, SavedView) == 0


def test_the_navigation_shows_what_a_user_may_use(crm, client):
    ui_user(crm, "contacts-only@ui.example", ["contact.view", "contact.edit"])
    page = UiBrowser(client, "contacts-only@ui.example").get("/")
    nav = page[page.index('<nav aria-label="Main">'):page.index("</nav>")]
    assert ">Contacts</a>" in nav and ">Import</a>" in nav and ">Export</a>" in nav
    assert ">Customers</a>" not in nav and ">Admin</a>" not in nav
