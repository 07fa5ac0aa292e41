"""Take the screenshots of docs/screenshots/ from a running `crm demo`.

Start the demo (``make demo``, or ``crm demo --port 5077`` in a scratch folder), then::

    .venv-test/bin/python docs/screenshots/take.py http://127.0.0.1:5077 PASSWORD

It signs in as the demo admin in Debian's headless Chromium (``/usr/bin/chromium``,
driven by Playwright), opens the dashboard and the busiest customer's page, uploads a
small contacts CSV with two bad rows as a dry run, and saves ``dashboard.png``,
``customer.png`` and ``import-report.png`` beside this script.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

HERE = Path(__file__).resolve().parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CONTACTS_CSV = (
    "First name;Last name;E-Mail;Phone;Company\n"
    "Ingrid;Sørensen;ingrid@nordlys.example;+47 22 12 34 56;Nordlys AS\n"
    "Paweł;Nowak;pawel.nowak@example.pl;+48 22 123 45 67;Piekarnia Nowak\n"
    "Lena;Fischer;not-an-address;+49 30 1234567;Fischer & Söhne\n"
    "Tomás;García;tomas@example.es;12;Ferretería García\n"
    "Emma;Lindqvist;emma.lindqvist@example.se;+46 8 123 456 78;Lindqvist AB\n"
)


def main() -> None:
    """Sign in and take the three screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("password")
    parser.add_argument("--email", default="demo@example.com")
    args = parser.parse_args()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(args.base_url + "/login")
        page.get_by_label("Email address").fill(args.email)
        page.get_by_label("Password").fill(args.password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Hello")
        page.screenshot(path=str(HERE / "dashboard.png"), full_page=True)
        _customer(page)
        _import_report(page, args.base_url)
        browser.close()


def _customer(page: Page) -> None:
    """The first customer of the recent interactions: a page with a full timeline."""
    page.locator(".entries a").first.click()
    expect(page.locator("ol.timeline")).to_be_visible()
    page.screenshot(path=str(HERE / "customer.png"))


def _import_report(page: Page, base_url: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "contacts.csv"
        path.write_text(CONTACTS_CSV, encoding="utf-8")
        page.goto(base_url + "/imports")
        page.get_by_label("What to import").select_option("contacts")
        page.locator("input#file").set_input_files(str(path))
        page.get_by_role("button", name="Upload").click()
        # The page refreshes itself until the worker of `crm serve` has run the job.
        expect(page.get_by_text("succeeded", exact=True)).to_be_visible(timeout=60_000)
    page.screenshot(path=str(HERE / "import-report.png"), full_page=True)


if __name__ == "__main__":
    main()
