"""The UI's catalogues: current with the code, complete in every language, consistent.

``make translations`` extracts, merges and compiles them; these tests fail while a text
of the UI is missing from ``messages.pot``, untranslated or fuzzy in a language, has
other placeholders or markup than the English, or while a ``.mo`` is not the
compilation of its ``.po``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from crm_core.languages import DEFAULT_LANGUAGE, LANGUAGES
from crm_core.web.i18n import TRANSLATIONS

ROOT = Path(__file__).resolve().parents[1]
TRANSLATED = [code for code in LANGUAGES if code != DEFAULT_LANGUAGE]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdifr]|%%")
TAG = re.compile(r"</?[a-z][^>]*>")


def _read_po(path: Path) -> Catalog:
    with path.open("rb") as file:
        return read_po(file)


def _texts(message_string: str | tuple[str, ...] | list[str]) -> list[str]:
    return [message_string] if isinstance(message_string, str) else list(message_string)


def _ids(catalog: Catalog) -> set[str | tuple[str, ...]]:
    return {message.id for message in catalog if message.id}


@pytest.fixture(scope="module")
def template() -> Catalog:
    """``messages.pot`` as committed."""
    return _read_po(TRANSLATIONS / "messages.pot")


def test_template_holds_every_text_the_code_marks(tmp_path: Path, template: Catalog) -> None:
    # The same extraction as `make translations` (babel.cfg and its keywords).
    extracted = tmp_path / "messages.pot"
    subprocess.run(
        [str(Path(sys.executable).with_name("pybabel")), "-q", "extract",
         "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext", "--no-location",
         "-o", str(extracted), "."],
        cwd=ROOT, check=True,
    )
    current = _ids(_read_po(extracted))
    assert len(current) > 500
    assert sorted(map(str, current - _ids(template))) == [], "run `make translations`"
    assert sorted(map(str, _ids(template) - current)) == [], "run `make translations`"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_text_is_translated(language: str, template: Catalog) -> None:
    catalog = _read_po(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po")
    assert catalog.locale is not None and str(catalog.locale) == language
    missing, fuzzy, incomplete = [], [], []
    for wanted in template:
        if not wanted.id:
            continue
        message = catalog.get(wanted.id)
        if message is None:
            missing.append(wanted.id)
        elif message.fuzzy:
            fuzzy.append(wanted.id)
        elif not all(_texts(message.string)) or (
            message.pluralizable and len(_texts(message.string)) != catalog.num_plurals
        ):
            incomplete.append(wanted.id)
    assert (missing, fuzzy, incomplete) == ([], [], [])


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_placeholders_and_markup(language: str) -> None:
    catalog = _read_po(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po")
    wrong = []
    for message in catalog:
        if not message.id or not message.string:
            continue
        english = _texts(message.id)
        for text in _texts(message.string):
            # A plural form may leave the count out ("один клиент"), never add one.
            expected = sorted(PLACEHOLDER.findall(english[-1]))
            found = sorted(PLACEHOLDER.findall(text))
            if found != expected and not (message.pluralizable and set(found) <= set(expected)):
                wrong.append((message.id, text))
            if sorted(TAG.findall(english[0])) != sorted(TAG.findall(text)):
                wrong.append((message.id, text))
    assert wrong == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_compiled_catalogue_is_the_po_file(language: str) -> None:
    folder = TRANSLATIONS / language / "LC_MESSAGES"
    source = _read_po(folder / "messages.po")
    with (folder / "messages.mo").open("rb") as file:
        compiled = read_mo(file)
    def entries(catalog: Catalog) -> dict[tuple[str, ...], tuple[str, ...]]:
        return {
            tuple(_texts(m.id)): tuple(_texts(m.string))
            for m in catalog if m.id and m.string and not m.fuzzy
        }

    assert entries(compiled) == entries(source), "run `make translations`"
