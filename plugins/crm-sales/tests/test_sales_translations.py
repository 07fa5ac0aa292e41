"""crm-sales's catalogues (``make translations``): every text its pages and messages mark
is translated into every language of core's UI, with the same placeholders and markup."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_core.catalogues import TRANSLATED, Catalogues

#: The plugin's folder (babel.cfg) and its catalogues, in the source tree being tested.
ROOT = Path(__file__).resolve().parents[1]
SALES = Catalogues(ROOT, ROOT / "crm_sales" / "translations")


def test_the_template_holds_every_text_the_code_marks():
    assert len(SALES.extracted()) > 300
    assert SALES.stale_template() == ([], []), "run `make translations`"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_text_is_translated_consistently(language: str) -> None:
    assert SALES.incomplete(language) == []
    assert SALES.inconsistent(language) == []
    assert not SALES.stale_compiled(language), "run `make translations`"


def test_a_german_seller_sees_the_board_in_german(crm, client, seller):
    from crm_core.services import users
    from crm_core.testing import UI_PASSWORD, UiBrowser

    with crm.unit_of_work(source="test") as uow:
        user = users.get_by_email(uow, seller.email)
        user.language = "de"
        user.set_password(UI_PASSWORD)
    page = UiBrowser(client, seller.email).get("/sales/board")
    assert '<html lang="de">' in page
    nav = page[page.index('<nav aria-label'):page.index("</nav>")]
    assert ">Verkaufschancen</a>" in nav and ">Deals</a>" not in nav
    assert "Qualification" in page  # stage names are data, as named by the sales admin
