"""The pipeline board in a real browser: Debian's Chromium, headless, driven by Playwright.

As core's ``tests/test_ui_browser.py`` does: a real server (werkzeug, in a thread) serves
the app with crm-sales on a fresh database of each engine; a salesperson signs in, creates
a deal from the customer's page, moves it across the board stage by stage to *Won* with
the cards' forms (no JavaScript involved) and finds its history on the deal's page.
Screenshots go to ``$CRM_TEST_ARTIFACTS`` (default ``test-artifacts/`` in the checkout).

Needs ``/usr/bin/chromium``: without it this test fails, it never skips.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from crm_sales.services import opportunities
from playwright.sync_api import Browser, Page, expect

from crm_core.runtime import CRM
from crm_core.services import customers
from crm_core.testing import browser_sign_in, ui_user

# The browser and the served app (with crm-sales only: see conftest.py) are
# crm_core.testing's ``browser`` and ``served_app``.
ARTIFACTS = Path(
    os.environ.get("CRM_TEST_ARTIFACTS") or Path(__file__).resolve().parents[3] / "test-artifacts"
)
STAGES = ["Needs analysis", "Proposal", "Negotiation", "Won"]


def _shot(page: Page, name: str, backend: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{backend}.png"), full_page=True)


def test_a_deal_goes_from_the_form_across_the_board_to_won(
    browser: Browser, served_app: tuple[str, CRM]
) -> None:
    base, crm = served_app
    backend = crm.engine.dialect.name
    sam = ui_user(crm, "sam@sales.example")
    with crm.unit_of_work(actor=sam, source="test") as uow:
        acme = customers.create(uow, {"name": "ACME Tools GmbH", "owner_id": sam.id})
        other = customers.create(uow, {"name": "Nordic Fika AB", "owner_id": sam.id})
        for name, amount in (("Coffee machines", "8400"), ("Spring order", "1250.50")):
            opportunities.create(uow, {"name": name, "customer_id": other.id, "amount": amount,
                                       "expected_close": "2027-04-30"})
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    browser_sign_in(page, base, "sam@sales.example")

    # Before: the funnel counts the two open deals created today, the forecast no win.
    page.goto(f"{base}/sales/funnel")
    expect(_count(page, "Deals")).to_have_text("2")
    expect(_count(page, "Won")).to_have_text("0")
    expect(_entered(page, "Won")).to_have_text("0")
    page.goto(f"{base}/sales/forecast")
    expect(page.get_by_role("main")).not_to_contain_text("12,000.50")

    # A new deal from the customer's page: the form knows the customer.
    page.goto(f"{base}/customers/{acme.id}")
    panel = page.locator("section.panel-sales-open-deals")
    expect(panel).to_contain_text("No open deals.")
    panel.get_by_role("link", name="New deal").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New deal")
    expect(page.get_by_label("Customer number")).to_have_value(str(acme.id))
    expect(page.locator("#customer_id-hint")).to_contain_text("ACME Tools GmbH")
    page.get_by_label("Amount").fill("-3")
    page.get_by_role("button", name="Create deal").click()
    expect(page.locator("#name-errors")).to_be_visible()  # refused, explained, kept
    expect(page.locator("#amount-errors")).to_contain_text("Must not be negative.")
    _shot(page, "sales-deal-form", backend)
    page.get_by_label("Name").fill("Tools 2027")
    page.get_by_label("Amount").fill("12000.50")
    page.get_by_label("Expected close").fill("2027-03-31")
    page.get_by_label("Description of line 1").fill("Licences")
    page.get_by_label("Quantity of line 1").fill("10")
    page.get_by_label("Unit price of line 1").fill("1200.05")
    page.get_by_role("button", name="Create deal").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Tools 2027")
    expect(page.get_by_role("status")).to_contain_text("Tools 2027 was created.")
    deal_id = int(page.url.rstrip("/").rsplit("/", 1)[1])

    # Across the board, a stage at a time, with the card's own form.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Deals").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Pipeline New business")
    for stage in STAGES:
        card = page.locator(f"#deal-{deal_id}")
        card.get_by_label("Move Tools 2027 to").select_option(label=stage)
        card.get_by_role("button", name="Move").click()
        expect(page.get_by_role("status")).to_contain_text(f"Tools 2027 moved to {stage}.")
        column = page.locator("section.board-column", has=page.get_by_role("heading", name=stage))
        expect(column.locator(f"#deal-{deal_id}")).to_be_visible()
        if stage == "Proposal":
            _shot(page, "sales-board", backend)
    won = page.locator("section.board-column.outcome-won")
    expect(won).to_contain_text("1 deal")
    expect(won).to_contain_text("12,000.50 EUR")
    _shot(page, "sales-board-won", backend)

    # The deal's page: won, with its whole history.
    page.locator(f"#deal-{deal_id}").get_by_role("link", name="Tools 2027").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Tools 2027")
    expect(page.locator(".subtitle .badge")).to_have_text("Won")
    history = page.locator("table.history tbody tr")
    expect(history).to_have_count(5)
    expect(history.locator("th")).to_have_text(["Qualification", *STAGES])
    expect(history.last).to_contain_text("still here")
    expect(page.locator(".details")).to_contain_text("12,000.50 EUR")
    _shot(page, "sales-deal", backend)

    # The customer's timeline tells the story.
    page.locator(".crumbs").get_by_role("link", name="ACME Tools GmbH").click()
    entries = page.locator("ol.timeline > li")
    expect(entries.first).to_contain_text("Tools 2027 moved from Negotiation to Won")
    expect(entries.last).to_contain_text("Tools 2027 started in Qualification")
    _shot(page, "sales-customer", backend)

    # After: the funnel has a third deal, won, that entered every stage; the forecast
    # shows this month's win.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Funnel").click()
    expect(_count(page, "Deals")).to_have_text("3")
    expect(_count(page, "Won")).to_have_text("1")
    expect(_count(page, "Win rate (won of closed)")).to_have_text(re.compile(r"100"))
    for stage in ("Qualification", *STAGES):
        expect(_entered(page, stage)).to_have_text("3" if stage == "Qualification" else "1")
    _shot(page, "sales-funnel", backend)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Forecast").click()
    won_row = page.locator("table.list tbody tr").filter(has_text="12,000.50")
    expect(won_row).to_have_count(1)
    _shot(page, "sales-forecast", backend)


def _count(page: Page, label: str) -> Any:
    """The figure under ``label`` among the funnel's outcomes."""
    return page.locator("dl.counts > div").filter(
        has=page.get_by_text(label, exact=True)).locator("dd")


def _entered(page: Page, stage: str) -> Any:
    """How many deals entered ``stage``, from the funnel's conversion table."""
    row = page.locator("table.list tbody tr").filter(
        has=page.get_by_role("rowheader", name=stage, exact=True))
    return row.locator("td").first
