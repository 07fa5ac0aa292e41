"""The languages the bundled UI speaks, by locale code, each named in its own language."""

from __future__ import annotations

#: English first (the source language), then the complete catalogues under
#: ``crm_core/translations``.
LANGUAGES: dict[str, str] = {
    "en": "English",
    "de": "Deutsch",
    "sv": "Svenska",
    "ru": "Русский",
    "pl": "Polski",
}

#: The language of visitors whose browser asks for none of :data:`LANGUAGES`.
DEFAULT_LANGUAGE = "en"
