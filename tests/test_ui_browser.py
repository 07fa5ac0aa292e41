"""The UI in a real browser: Debian's Chromium, headless, driven by Playwright.

A real server (werkzeug, in a thread) serves the app on a fresh database of each engine;
the browser signs in and works as a salesperson would, finding controls by their
labels and roles (so an unlabelled control fails the test). Screenshots of the key pages
go to ``$CRM_TEST_ARTIFACTS`` (default ``test-artifacts/`` in the checkout).

Needs ``/usr/bin/chromium`` (Debian's ``chromium`` package; ``.ci/run`` installs it):
without it these tests fail, they never skip.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from crm_core.runtime import CRM
from crm_core.services import customers
from crm_core.testing import browser_sign_in, ui_user

# The browser and the served app are crm_core.testing's ``browser`` and ``served_app``.
pytestmark = pytest.mark.plugins()  # plain core

ARTIFACTS = Path(
    os.environ.get("CRM_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "test-artifacts"
)


def _shot(page: Page, name: str, backend: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{backend}.png"), full_page=True)


def test_a_salesperson_works_a_customer_in_the_browser(
    browser: Browser, served_app: tuple[str, CRM]
) -> None:
    base, crm = served_app
    backend = crm.engine.dialect.name
    ui_user(crm, "sam@shop.example")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    browser_sign_in(page, base, "sam@shop.example")
    _shot(page, "dashboard", backend)

    # Create a customer.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    page.get_by_role("link", name="New customer").click()
    page.get_by_label("Name").fill("Nordic Fika AB")
    page.get_by_label("Email").fill("not an address")
    page.get_by_role("button", name="Create customer").click()
    expect(page.locator("#email-errors")).to_be_visible()  # refused, explained, kept
    expect(page.get_by_label("Name")).to_have_value("Nordic Fika AB")
    page.get_by_label("Email").fill("hej@fika.example")
    page.get_by_label("Lifecycle stage").select_option("prospect")
    page.get_by_role("button", name="Create customer").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Nordic Fika AB")
    expect(page.get_by_role("status")).to_contain_text("Nordic Fika AB was created.")

    # Log a call in two clicks; it is the newest entry of the timeline.
    page.get_by_label("What happened?").fill("Discussed the spring order")
    page.get_by_role("button", name="Log call").click()
    expect(page.get_by_role("status")).to_contain_text("Call logged.")
    first = page.locator("ol.timeline > li").first
    expect(first).to_contain_text("Discussed the spring order")
    expect(first).to_contain_text("call")
    _shot(page, "customer", backend)

    # Find it again through the search box of the top bar.
    page.get_by_role("link", name="Dashboard").click()
    search = page.get_by_role("searchbox", name="Search customers")
    search.fill("fika")
    search.press("Enter")
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    page.get_by_role("link", name="Nordic Fika AB").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Nordic Fika AB")

    # Edit while someone else saves: both versions are shown, saving again keeps ours.
    page.get_by_role("link", name="Edit").click()
    customer_id = int(page.url.rstrip("/").split("/")[-2])
    with crm.unit_of_work(source="test") as uow:
        customers.update(uow, customer_id, {"city": "Göteborg"})
    page.get_by_label("City").fill("Malmö")
    page.get_by_role("button", name="Save").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Someone else saved Nordic Fika AB")
    expect(alert.locator("tr", has_text="City")).to_contain_text("Göteborg")
    expect(alert.locator("tr", has_text="City")).to_contain_text("Malmö")
    _shot(page, "conflict", backend)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("was saved")
    expect(page.locator(".details")).to_contain_text("Malmö")


def test_the_pages_fit_a_phone(browser: Browser, served_app: tuple[str, CRM]) -> None:
    base, crm = served_app
    ui_user(crm, "pia@shop.example")
    with crm.unit_of_work(source="test") as uow:
        customers.bulk_create(uow, [{"name": f"Kund {n} AB", "city": "Lund"} for n in range(8)])
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    browser_sign_in(page, base, "pia@shop.example")
    page.goto(base + "/customers")
    expect(page.locator("table.list tbody tr")).to_have_count(8)
    overflow: Any = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the customer list is {overflow}px wider than the phone"
    _shot(page, "customers-phone", crm.engine.dialect.name)


def test_merging_two_duplicates_and_undoing_it_in_the_browser(
    browser: Browser, served_app: tuple[str, CRM]
) -> None:
    base, crm = served_app
    ui_user(crm, "mia@shop.example")
    with crm.unit_of_work(source="test") as uow:
        keep = customers.create(uow, {"name": "Café Kranz GmbH", "email": "hallo@kranz.example",
                                      "city": "Köln"})
        customers.create(uow, {"name": "Cafe Kranz", "email": "hallo@kranz.example",
                               "phone": "+49 221 123456"})
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    browser_sign_in(page, base, "mia@shop.example")
    page.goto(f"{base}/customers/{keep.id}")
    page.get_by_role("link", name="Duplicates").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Duplicates of Café Kranz GmbH")
    page.get_by_role("link", name="Compare and merge").first.click()
    merge = page.get_by_role("button", name="Merge Cafe Kranz into Café Kranz GmbH")
    _shot(page, "merge", crm.engine.dialect.name)
    merge.click()
    expect(page.get_by_role("status")).to_contain_text("merged into")
    expect(page.locator(".details")).to_contain_text("+49 221 123456")  # taken from the other
    page.get_by_role("button", name="Undo the merge").click()
    expect(page.get_by_role("status")).to_contain_text("undone")
    page.goto(f"{base}/customers?q=kranz")
    expect(page.locator("table.list tbody tr")).to_have_count(2)
