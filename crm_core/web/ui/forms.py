"""HTML forms and the services: form fields in, service data out, field messages back.

A form posts plain text fields named like the schema's fields. :func:`form_data` turns
them into the data a service takes (empty means "none"; comma-separated tags become a
list); the service validates it with the same marshmallow schema as the API, and
:func:`field_errors` flattens its messages so that each one shows beside its field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from werkzeug.datastructures import MultiDict


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


def field_errors(messages: Mapping[str, Any]) -> dict[str, list[str]]:
    """A service's messages as ``{field: [text, ...]}`` (nested ones joined into the field's)."""
    errors: dict[str, list[str]] = {}
    for name, value in messages.items():
        errors[str(name)] = list(_texts(value))
    return errors


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for inner in value.values():
            yield from _texts(inner)
    elif isinstance(value, Iterable):
        for inner in value:
            yield from _texts(inner)
    else:
        yield str(value)
