"""Checks of a project's UI catalogues (core's and every plugin's), for their tests.

A project marks its texts, extracts them into ``messages.pot`` with ``pybabel extract
-F babel.cfg -k _l -k lazy_gettext`` and keeps one ``messages.po`` (and the compiled
``messages.mo``) per language of :data:`crm_core.languages.LANGUAGES`. :class:`Catalogues`
says what is wrong with them; ``tests/test_translations.py`` (core) and crm-sales's
``test_sales_translations.py`` assert it finds nothing.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from crm_core.languages import DEFAULT_LANGUAGE, LANGUAGES

#: The languages a catalogue must exist for (English is the source).
TRANSLATED = tuple(code for code in LANGUAGES if code != DEFAULT_LANGUAGE)
#: The keywords texts are marked with, besides Babel's defaults (``_``, ``gettext``, ``N_``).
KEYWORDS = ("_l", "lazy_gettext")
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sdifr]|%%")
_TAG = re.compile(r"</?[a-z][^>]*>")


def read_catalogue(path: Path) -> Catalog:
    """A ``.po`` or ``.pot`` file."""
    with path.open("rb") as file:
        return read_po(file)


def _texts(value: str | tuple[str, ...] | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


@dataclass(frozen=True)
class Catalogues:
    """The catalogues of the project in ``root`` (``babel.cfg`` there), kept in ``folder``."""

    root: Path
    folder: Path

    def extracted(self) -> set[str | tuple[str, ...]]:
        """The texts the code marks now (what ``pybabel extract`` finds)."""
        pybabel = Path(sys.executable).with_name("pybabel")
        with tempfile.TemporaryDirectory() as scratch:
            output = Path(scratch) / "messages.pot"
            keywords = [arg for keyword in KEYWORDS for arg in ("-k", keyword)]
            subprocess.run(
                [str(pybabel), "-q", "extract", "-F", "babel.cfg", *keywords, "--no-location",
                 "-o", str(output), "."],
                cwd=self.root, check=True,
            )
            return {message.id for message in read_catalogue(output) if message.id}

    def template(self) -> Catalog:
        """``messages.pot`` as committed."""
        return read_catalogue(self.folder / "messages.pot")

    def stale_template(self) -> tuple[list[str], list[str]]:
        """Texts marked but missing from ``messages.pot``, and texts there no longer marked."""
        marked = self.extracted()
        kept = {message.id for message in self.template() if message.id}
        return sorted(map(str, marked - kept)), sorted(map(str, kept - marked))

    def po(self, language: str) -> Catalog:
        """A language's ``messages.po``."""
        return read_catalogue(self.folder / language / "LC_MESSAGES" / "messages.po")

    def incomplete(self, language: str) -> list[str]:
        """Texts of the template missing, fuzzy or (partly) untranslated in ``language``."""
        catalog = self.po(language)
        problems = []
        for wanted in self.template():
            if not wanted.id:
                continue
            message = catalog.get(wanted.id)
            if message is None or message.fuzzy:
                problems.append(f"{'missing' if message is None else 'fuzzy'}: {wanted.id}")
            elif not all(_texts(message.string)) or (
                message.pluralizable and len(_texts(message.string)) != catalog.num_plurals
            ):
                problems.append(f"untranslated: {wanted.id}")
        return problems

    def inconsistent(self, language: str) -> list[str]:
        """Translations whose placeholders or markup differ from the English."""
        problems = []
        for message in self.po(language):
            if not message.id or not message.string:
                continue
            english = _texts(message.id)
            for text in _texts(message.string):
                expected = sorted(_PLACEHOLDER.findall(english[-1]))
                found = sorted(_PLACEHOLDER.findall(text))
                # A plural form may leave the count out ("один клиент"), never add one.
                if found != expected and not (
                    message.pluralizable and set(found) <= set(expected)
                ):
                    problems.append(f"placeholders: {message.id} -> {text}")
                if sorted(_TAG.findall(english[0])) != sorted(_TAG.findall(text)):
                    problems.append(f"markup: {message.id} -> {text}")
        return problems

    def stale_compiled(self, language: str) -> bool:
        """Whether ``messages.mo`` is not the compilation of ``messages.po``."""
        lc = self.folder / language / "LC_MESSAGES"
        with (lc / "messages.mo").open("rb") as file:
            compiled = read_mo(file)

        def entries(catalog: Catalog) -> dict[tuple[str, ...], tuple[str, ...]]:
            return {
                tuple(_texts(m.id)): tuple(_texts(m.string))
                for m in catalog if m.id and m.string and not m.fuzzy
            }

        return entries(compiled) != entries(self.po(language))
