"""The web UI in a real browser: the app served over HTTP and headless Chromium to drive it.

``served_app`` serves the app with werkzeug in a thread, on a fresh database of the
backend under test, migrated to every head; ``browser`` is Playwright's Chromium
(Debian's ``/usr/bin/chromium``, or ``$CRM_TEST_CHROMIUM``), headless.
:func:`browser_sign_in` signs a page in as a user made with ``ui_user``.

Playwright is imported only when ``browser`` or :func:`browser_sign_in` is used (it
comes with ``crm-core[test]``). Without it or without Chromium the tests that use the
browser fail: they never skip.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from crm_core.runtime import CRM

#: Where the browser is unless ``$CRM_TEST_CHROMIUM`` says otherwise: Debian's package.
CHROMIUM = Path("/usr/bin/chromium")
#: How it is started.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path() -> Path:
    """The Chromium to launch: ``$CRM_TEST_CHROMIUM``, else :data:`CHROMIUM`."""
    return Path(os.environ.get("CRM_TEST_CHROMIUM") or CHROMIUM)


def _sync_playwright() -> Any:
    """Playwright's ``sync_playwright``; the test fails if Playwright is not installed."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pass
    else:
        return sync_playwright
    pytest.fail("playwright is missing: pip install 'crm-core[test]'")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium driven by Playwright (no browser download); one per test module."""
    executable = chromium_path()
    if not executable.exists():
        pytest.fail(
            f"{executable} is missing: install Debian's chromium (apt-get install chromium) "
            "or point CRM_TEST_CHROMIUM at a Chromium"
        )
    with _sync_playwright()() as playwright:
        launched = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def served_app(
    request: pytest.FixtureRequest,
    fresh_database_url: str,
    tmp_path: Path,
    crm_settings_overrides: dict[str, Any],
    crm_plugin_modules: list[Any],
) -> Iterator[tuple[str, CRM]]:
    """The app served on 127.0.0.1 over a fresh, migrated database: ``(base_url, crm)``.

    The ``plugins`` mark, ``crm_settings_overrides`` and ``crm_plugin_modules`` choose
    what it runs, as for ``crm``. Its writes are committed (a browser sees them through
    the server): the database is thrown away after the test.
    """
    from werkzeug.serving import make_server

    from crm_core import migrate
    from crm_core.runtime import CRM
    from crm_core.testing import crm_test_settings, plugin_overrides
    from crm_core.web.app import create_app

    overrides = plugin_overrides(request, crm_settings_overrides)
    settings = crm_test_settings(fresh_database_url, tmp_path / "instance", **overrides)
    crm = CRM(settings, plugins=crm_plugin_modules)
    try:
        migrate.upgrade(crm)
        server = make_server("127.0.0.1", 0, create_app(crm=crm), threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}", crm
        finally:
            server.shutdown()
            thread.join(timeout=10)
    finally:
        crm.dispose()


def browser_sign_in(page: Page, base_url: str, email: str, password: str | None = None) -> None:
    """Sign ``page`` in at ``base_url`` as ``email`` (default password: ``UI_PASSWORD``).

    It opens the dashboard, is sent to the sign-in form, fills it in by its labels and
    waits for the dashboard's greeting.
    """
    from playwright.sync_api import expect

    from crm_core.testing import UI_PASSWORD

    page.goto(base_url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(UI_PASSWORD if password is None else password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Hello")
