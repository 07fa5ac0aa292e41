"""Core's UI catalogues: current with the code, complete in every language, consistent.

``make translations`` extracts, merges and compiles them; these tests fail while a text
of the UI is missing from ``messages.pot``, untranslated or fuzzy in a language, has
other placeholders or markup than the English, or while a ``.mo`` is not the
compilation of its ``.po`` (:class:`crm_core.catalogues.Catalogues`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_core.catalogues import TRANSLATED, Catalogues
from crm_core.web.i18n import TRANSLATIONS

CORE = Catalogues(Path(__file__).resolve().parents[1], TRANSLATIONS)


def test_the_template_holds_every_text_the_code_marks():
    assert len(CORE.extracted()) > 500
    assert CORE.stale_template() == ([], []), "run `make translations`"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_text_is_translated(language: str) -> None:
    assert str(CORE.po(language).locale) == language
    assert CORE.incomplete(language) == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_placeholders_and_markup(language: str) -> None:
    assert CORE.inconsistent(language) == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_compiled_catalogue_is_the_po_file(language: str) -> None:
    assert not CORE.stale_compiled(language), "run `make translations`"
