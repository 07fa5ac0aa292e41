"""Edits that carry the version the user saw, and what differs when that version is stale.

Every edit form sends back, in a hidden ``version`` field, the version of the record the
user saw (:func:`form_version` is what the form holds, :func:`posted_version` reads it
back). When someone else saved in between, the service refuses the edit and the page
shows, field by field, what is stored now beside what the user has (:func:`differences`,
shown by the ``diff_table`` macro of ``_macros.html``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import abort
from werkzeug.datastructures import MultiDict

from crm_core.web.ui.forms import field_label


@dataclass(frozen=True)
class Difference:
    """One field that differs between what is stored now and what the user sent or saw."""

    field: str
    """The field's label."""
    stored: str
    yours: str


def posted_version(form: MultiDict[str, str]) -> int:
    """The version the user saw (the form's hidden ``version`` field); missing or bad: 400."""
    try:
        return int(form.get("version", ""))
    except ValueError:
        abort(400)


def form_version(values: Mapping[str, Any], record: Any) -> Any:
    """The version a form sends back: the one in ``values``, else ``record``'s (if any)."""
    return values.get("version") or (record.version if record is not None else None)


def _as_text(value: Any) -> str:
    """A value as a form shows and compares it: ``None`` is empty, text is stripped."""
    return "" if value is None else str(value).strip()


def differences(
    stored: Mapping[str, Any],
    yours: Mapping[str, Any],
    fields: Iterable[str],
    labels: Mapping[str, str] | None = None,
) -> list[Difference]:
    """The ``fields`` whose text differs between ``stored`` and ``yours``, in their order.

    Each is labelled from ``labels``, else from its name (:func:`~.forms.field_label`).
    """
    found = []
    for name in fields:
        theirs, mine = _as_text(stored.get(name)), _as_text(yours.get(name))
        if theirs != mine:
            label = (labels or {}).get(name) or field_label(name)
            found.append(Difference(str(label), theirs, mine))  # labels may be lazy_gettext
    return found
