"""The UI in the user's language: texts, the service's messages, dates, numbers, plurals.

The catalogues' completeness is checked in ``test_translations.py``; here a German,
Russian, Polish or Swedish reader gets pages in their language, chosen in their profile
or by their browser.
"""

from __future__ import annotations

from typing import Any

from crm_core.models import Customer
from crm_core.testing import UiBrowser
from tests.ui_support import count_rows


def _speak(ui: UiBrowser, language: str) -> None:
    ui.post("/account", {"name": "ui-admin", "language": language})


def _nav(page: str) -> str:
    return page[page.index('<nav aria-label'):page.index("</nav>")]


def test_a_german_user_gets_pages_and_charts_in_german(ui: UiBrowser) -> None:
    _speak(ui, "de")
    page = ui.get("/")
    assert '<html lang="de">' in page
    nav = _nav(page)
    assert ">Übersicht</a>" in nav and ">Kunden</a>" in nav
    assert ">Customers</a>" not in nav
    assert "Interaktionen pro Woche nach Kanal, letzte 12 Wochen" in page  # plural form
    assert "Ihr Profil" in ui.get("/account")


def test_refused_fields_are_explained_in_the_users_language(crm: Any, ui: UiBrowser) -> None:
    _speak(ui, "de")
    response = ui.post(
        "/customers/new", {"name": "x" * 301, "email": "not-an-email"}, status=422
    )
    page = response.get_data(as_text=True)
    assert "es wurde nichts gespeichert" in page
    assert "Keine gültige E-Mail-Adresse." in page  # a schema's own message (N_)
    assert "Länger als die maximale Länge von 300." in page  # marshmallow's, by pattern
    assert "Not a valid email address." not in page
    assert count_rows(crm, Customer) == 0


def test_dates_and_flash_messages_follow_the_language(ui: UiBrowser) -> None:
    customer_url = ui.post("/customers/new", {"name": "Datum GmbH"}).headers["Location"]
    _speak(ui, "de")
    ui.post(f"{customer_url}/interactions",
            {"channel": "call", "subject": "Kickoff", "occurred_at": "2026-03-05 14:30"})
    page = ui.get(customer_url)
    assert "Anruf erfasst." in page
    assert '<time datetime="2026-03-05T14:30:00+00:00">5. März 2026, 14:30</time>' in page


def test_russian_plurals_use_the_right_form(ui: UiBrowser) -> None:
    _speak(ui, "ru")
    page = ui.get("/")
    assert '<html lang="ru">' in page and ">Клиенты</a>" in _nav(page)
    # 12: the "many" form (not "недели" for 2-4, not "неделю" for 1)
    assert "за 12 последних недель" in page


def test_without_a_choice_the_browser_decides(ui: UiBrowser) -> None:
    def page_for(accept: str) -> str:
        return ui.client.get("/", headers={"Accept-Language": accept}).get_data(as_text=True)

    page = page_for("pl-PL,pl;q=0.9,en;q=0.5")
    assert '<html lang="pl">' in page and ">Klienci</a>" in _nav(page)
    page = page_for("fr-FR,fr;q=0.9")
    assert '<html lang="en">' in page and ">Customers</a>" in _nav(page)


def test_the_sign_in_page_speaks_the_browsers_language(app: Any) -> None:
    page = app.test_client().get("/login", headers={"Accept-Language": "sv"}).get_data(True)
    assert '<html lang="sv">' in page
    assert "Logga in" in page and "Lösenord" in page
