"""HTML forms and the services: form fields in, service data out, field messages back.

A form posts plain text fields named like the schema's fields. :func:`form_data` turns
them into the data a service takes (empty means "none"; comma-separated tags become a
list); the service validates it with the same marshmallow schema as the API, and
:func:`field_errors` flattens its messages so that each one shows beside its field.
Lists of items (a contact's emails) are posted as numbered rows
(``emails-0-label``, ``emails-0-email``...): :func:`posted_rows` reads them and
:func:`row_errors` puts the service's messages beside the right row. :func:`unstorable`
(or :func:`refuse_unstorable`) refuses, before any service runs, what no database stores
(as the API does).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Integer
from werkzeug.datastructures import MultiDict

from crm_core.errors import ValidationError
from crm_core.web.api.pagination import int_bounds
from crm_core.web.i18n import translate


def form_data(
    form: MultiDict[str, str], fields: Iterable[str], *, lists: Iterable[str] = ()
) -> dict[str, Any]:
    """The posted ``fields`` as service data: text stripped, empty -> ``None``.

    Fields in ``lists`` are comma-separated (tags): a list of their non-empty parts.
    Fields that were not posted at all are left out.
    """
    listed = set(lists)
    data: dict[str, Any] = {}
    for name in fields:
        if name not in form:
            continue
        value = form.get(name, "").strip()
        if name in listed:
            data[name] = [part.strip() for part in value.split(",") if part.strip()]
        else:
            data[name] = value or None
    return data


def field_label(name: str) -> str:
    """A field's name as pages label it: ``postal_code`` -> ``Postal code``."""
    return name.replace("_", " ").capitalize()


def field_errors(messages: Mapping[str, Any]) -> dict[str, list[str]]:
    """A service's messages as ``{field: [text, ...]}`` (nested ones joined into the field's)."""
    errors: dict[str, list[str]] = {}
    for name, value in messages.items():
        errors[str(name)] = list(_texts(value))
    return errors


def _texts(value: Any) -> Iterable[str]:
    """Every message in ``value`` (nested lists and mappings), in the request's language."""
    if isinstance(value, str):
        yield translate(value)
    elif isinstance(value, Mapping):
        for inner in value.values():
            yield from _texts(inner)
    elif isinstance(value, Iterable):
        for inner in value:
            yield from _texts(inner)
    else:
        yield str(value)


def posted_rows(
    form: Mapping[str, str], name: str, value_field: str
) -> list[dict[str, str]] | None:
    """The non-empty rows ``<name>-<n>-label`` / ``<name>-<n>-<value_field>``, in order of ``n``.

    A row without a label gets the schema's default label. ``None`` when the form has no
    such rows at all (the list is then left as it is).
    """
    pattern = re.compile(rf"{re.escape(name)}-(\d{{1,6}})-(?:label|{re.escape(value_field)})")
    numbers = sorted({int(found.group(1)) for key in form if (found := pattern.fullmatch(key))})
    if not numbers:
        return None
    rows = []
    for number in numbers:
        label = (form.get(f"{name}-{number}-label") or "").strip()
        value = (form.get(f"{name}-{number}-{value_field}") or "").strip()
        if not label and not value:
            continue
        rows.append({"label": label, value_field: value} if label else {value_field: value})
    return rows


def row_errors(messages: Mapping[str, Any], rows: Mapping[str, str]) -> dict[str, list[str]]:
    """A service's messages as ``{form field: [text, ...]}``, rows' fields included.

    ``rows`` maps each list to the field holding a row's value (``{"emails": "email"}``):
    ``{"emails": {0: {"email": [...]}}}`` becomes ``{"emails-0-email": [...]}``; a
    message about a whole row or list stays under the list's name.
    """
    errors: dict[str, list[str]] = {}
    for name, value in messages.items():
        key = str(name)
        if key in rows and isinstance(value, Mapping):
            for index, inner in value.items():
                if isinstance(inner, Mapping):
                    for field, texts in inner.items():
                        known = field in ("label", rows[key])
                        target = f"{key}-{index}-{field}" if known else key
                        errors.setdefault(target, []).extend(_texts(texts))
                else:
                    errors.setdefault(key, []).extend(_texts(inner))
        else:
            errors.setdefault(key, []).extend(_texts(value))
    return errors


def unstorable(form: Mapping[str, str], model: Any) -> dict[str, list[str]]:
    """Posted fields no database can store, as the API refuses them: ``{field: [text]}``.

    NUL characters anywhere, and whole numbers beyond the range of ``model``'s integer
    column of the same name (PostgreSQL would fail on them rather than refuse them).
    """
    errors: dict[str, list[str]] = {}
    columns = model.__table__.columns
    for name, value in form.items():
        if "\x00" in value:
            errors[name] = [_("Must not contain NUL characters.")]
            continue
        column = columns.get(name)
        number = re.fullmatch(r"[+-]?\d+", value.strip())
        if column is not None and isinstance(column.type, Integer) and number:
            low, high = int_bounds(column)
            if not low <= int(number.group()) <= high:
                errors[name] = [_("Must be from %(low)s to %(high)s.", low=low, high=high)]
    return errors


def refuse_unstorable(form: Mapping[str, str], model: Any) -> None:
    """:class:`ValidationError` with the messages of :func:`unstorable`, if there are any."""
    refused = unstorable(form, model)
    if refused:
        raise ValidationError(refused)
