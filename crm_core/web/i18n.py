"""The UI's languages (Flask-Babel): which one a request gets, and locale-aware filters.

A signed-in user's own choice (their profile's ``language``) wins; otherwise the
browser's ``Accept-Language`` picks among :data:`crm_core.languages.LANGUAGES`;
otherwise English. Catalogues live in ``crm_core/translations/<code>/LC_MESSAGES``
(``messages.po``, compiled to ``messages.mo`` by ``make translations``); plugins add
directories of their own through the ``crm_translation_directories`` hook, merged
over core's (same ``messages`` domain).

Templates get ``_``/``gettext``/``ngettext`` (Jinja's i18n extension), :func:`time_tag`
and :func:`when` for moments, and :func:`number` for counts and amounts.
The API does not translate: programs get English.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from babel.dates import format_skeleton, format_time, get_datetime_format
from flask import Flask, request
from flask_babel import Babel, format_decimal, get_locale, get_translations, to_user_timezone
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup

from crm_core.languages import DEFAULT_LANGUAGE, LANGUAGES

#: Core's catalogues (one folder per language code).
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"


def init_i18n(app: Flask, plugin_directories: list[str]) -> None:
    """Set up Flask-Babel on ``app`` with core's catalogues and ``plugin_directories``."""
    directories = [str(TRANSLATIONS), *plugin_directories]
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", ";".join(directories))
    Babel(app, locale_selector=select_language, default_locale=DEFAULT_LANGUAGE)
    app.jinja_env.filters["number"] = number
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["translate"] = translate
    app.jinja_env.globals["time_tag"] = time_tag
    app.jinja_env.globals["current_language"] = current_language
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES


def select_language() -> str:
    """The language of this request: the user's choice, else the browser's, else English."""
    if current_user and current_user.is_authenticated:
        chosen = getattr(current_user, "language", None)
        if chosen in LANGUAGES:
            return chosen
    return request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT_LANGUAGE


def current_language() -> str:
    """The code of the language this request is rendered in (``<html lang>``)."""
    return str(get_locale() or DEFAULT_LANGUAGE)


def number(value: Any, decimals: int | None = None) -> str:
    """``value`` with the language's digit grouping and decimal sign (``1,234.5``/``1.234,5``)."""
    if value is None:
        return ""
    if decimals is None:
        return format_decimal(value)
    return format_decimal(value, format=f"#,##0.{'0' * decimals}" if decimals else "#,##0")


def when(value: dt.datetime | dt.date, *, time: bool = True) -> str:
    """``value`` as the language writes a day (``Dec 2, 2026`` / ``2. Dez. 2026``), with
    the time of day (``10:15``) unless ``time`` is false; datetimes in the user's zone."""
    locale = get_locale()
    if not isinstance(value, dt.datetime):
        return format_skeleton("yMMMd", value, locale=locale)
    value = to_user_timezone(value)
    day = format_skeleton("yMMMd", value, locale=locale)
    if not time:
        return day
    clock = format_time(value, "short", locale=locale)
    return get_datetime_format("medium", locale=locale).replace("{1}", day).replace("{0}", clock)


def time_tag(value: dt.datetime | dt.date | None, *, time: bool = True, empty: str = "") -> Markup:
    """A ``<time>`` element: the machine-readable moment, shown as :func:`when` writes it."""
    if value is None:
        return Markup.escape(empty)
    return Markup('<time datetime="{}">{}</time>').format(value.isoformat(), when(value, time=time))


#: Messages marshmallow formats with values before we see them: each pattern with the
#: message to show instead, its placeholders filled from the pattern's named groups.
_FORMATTED_MESSAGES = (
    (re.compile(r"Longer than maximum length (?P<max>\d+)\."),
     _l("Longer than maximum length %(max)s.")),
    (re.compile(r"Shorter than minimum length (?P<min>\d+)\."),
     _l("Shorter than minimum length %(min)s.")),
    (re.compile(r"Length must be between (?P<min>\d+) and (?P<max>\d+)\."),
     _l("Length must be between %(min)s and %(max)s.")),
    (re.compile(r"Must be one of: (?P<choices>.*)\."), _l("Must be one of: %(choices)s.")),
    (re.compile(r"Must be greater than or equal to (?P<min>\S+)\."),
     _l("Must be greater than or equal to %(min)s.")),
    (re.compile(r"Must be less than or equal to (?P<max>\S+)\."),
     _l("Must be less than or equal to %(max)s.")),
    (re.compile(r"Must be greater than or equal to (?P<min>\S+) and less than or equal to "
                r"(?P<max>\S+)\."),
     _l("Must be greater than or equal to %(min)s and less than or equal to %(max)s.")),
    (re.compile(r"Use at least (?P<count>\d+) characters\."),
     _l("Use at least %(count)s characters.")),
)


def translate(message: str) -> str:
    """``message`` from a service or schema (English) in this request's language.

    Messages marked with :func:`crm_core.i18n.N_` are looked up as they are; the ones
    marshmallow formats with values (lengths, ranges, choices) by their pattern. A
    message the catalogues do not know stays English.
    """
    for pattern, text in _FORMATTED_MESSAGES:
        found = pattern.fullmatch(message)
        if found:
            return str(text) % found.groupdict()
    return get_translations().gettext(message)
