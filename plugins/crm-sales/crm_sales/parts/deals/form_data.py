"""The deal form's data: its fields and repeated rows (contacts and lines, like core's
contact form), read from a post as the service's data and from a stored deal as text,
the service's errors by field, and the conflict table of an edit someone else overtook.

Not a part: :mod:`crm_sales.parts.deals.forms` shows the form and saves it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict

from crm_core.web.ui.conflicts import Difference, differences
from crm_core.web.ui.forms import field_errors
from crm_sales.models import ContactRole, Opportunity
from crm_sales.parts.deals.common import form_integer, role_label

#: Empty rows the form offers after the stored contacts and lines.
EMPTY_ROWS = 2
#: The single-value fields of the deal form, in its order.
FORM_FIELDS = (
    "name", "customer_id", "pipeline_id", "stage_id", "amount", "currency", "expected_close",
    "probability", "owner_id", "source", "next_step",
)
#: The form's checkboxes.
FLAGS = ("committed",)
#: The form's whole-number fields (sent to the schema as numbers, else as typed).
INTEGERS = frozenset({"customer_id", "pipeline_id", "stage_id", "probability", "owner_id"})
#: The repeated rows: list name -> its fields, and the fields that make a row non-empty.
ROWS = {
    "contacts": ("contact_id", "role"),
    "lines": ("description", "quantity", "unit_price", "discount_percent", "product_id"),
}
ROW_CONTENT = {
    "contacts": ("contact_id",),
    "lines": ("description", "quantity", "unit_price", "discount_percent"),
}
#: What the empty rows hold at first.
ROW_DEFAULTS = {"contacts": {"role": ContactRole.OTHER.value}, "lines": {}}
#: How the conflict table names the fields.
FIELD_LABELS = {
    "name": _l("Name"), "customer_id": _l("Customer"), "pipeline_id": _l("Pipeline"),
    "stage_id": _l("Stage"), "amount": _l("Amount"), "currency": _l("Currency"),
    "expected_close": _l("Expected close"), "probability": _l("Probability"),
    "owner_id": _l("Owner"), "source": _l("Source"), "next_step": _l("Next step"),
    "committed": _l("Committed"), "contacts": _l("Contacts"), "lines": _l("Lines"),
}


def _plain(value: Decimal | None) -> str:
    """A decimal as a form shows it: no trailing zeros, no exponent."""
    if value is None:
        return ""
    text = format(Decimal(value).normalize(), "f")
    return text


def _money_text(value: Decimal | None) -> str:
    """An amount as a form shows it: two decimals."""
    return "" if value is None else f"{Decimal(value):.2f}"


def posted(form: MultiDict[str, str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, int]]:
    """The posted form as service data, as the values to show again, and the rows per list."""
    data: dict[str, Any] = {}
    for name in FORM_FIELDS:
        if name not in form:
            continue
        text = form.get(name, "").strip()
        if name in ("pipeline_id", "stage_id"):
            if text:  # empty: the default pipeline, its first stage (or the deal's stage)
                data[name] = form_integer(text)
        elif name in INTEGERS:
            data[name] = form_integer(text) if text else None
        elif name == "expected_close":
            data[name] = text or None
        elif name == "amount":
            data[name] = text or "0"
        elif name == "currency":
            data[name] = text.upper() or None
        else:
            data[name] = text
    for flag in FLAGS:
        data[flag] = bool(form.get(flag))
    values: dict[str, Any] = {name: form.get(name, "") for name in FORM_FIELDS}
    values.update({flag: "1" if data[flag] else "" for flag in FLAGS})
    if "version" in form:
        values["version"] = form.get("version", "")
    rows = {name: _posted_rows(form, name) for name in ROWS}
    data["contacts"] = [
        {"contact_id": form_integer(row["contact_id"]),
         "role": row["role"] or ContactRole.OTHER.value}
        for row in rows["contacts"]
    ]
    data["lines"] = [_line_data(row) for row in rows["lines"]]
    return data, values, put_rows(values, rows)


def _posted_rows(form: Mapping[str, str], name: str) -> list[dict[str, str]]:
    """The non-empty rows ``<name>-<n>-<field>`` of the form, in order of ``n``."""
    pattern = re.compile(rf"{re.escape(name)}-(\d{{1,4}})-(\w+)")
    numbers = sorted({
        int(found.group(1)) for key in form
        if (found := pattern.fullmatch(key)) and found.group(2) in ROWS[name]
    })
    rows = []
    for number in numbers:
        row = {part: (form.get(f"{name}-{number}-{part}") or "").strip() for part in ROWS[name]}
        if any(row[part] for part in ROW_CONTENT[name]):
            rows.append(row)
    return rows


def _line_data(row: Mapping[str, str]) -> dict[str, Any]:
    """A posted line as service data: empty quantity, price and discount take the defaults."""
    line: dict[str, Any] = {"description": row["description"]}
    for part in ("quantity", "unit_price", "discount_percent"):
        if row[part]:
            line[part] = row[part]
    line["product_id"] = form_integer(row["product_id"]) if row["product_id"] else None
    return line


def put_rows(values: dict[str, Any], rows: Mapping[str, list[dict[str, str]]]) -> dict[str, int]:
    """Write ``rows`` into ``values`` as the form's fields; return each list's row count."""
    counts = {}
    for name, parts in ROWS.items():
        items = rows.get(name, [])
        for index, item in enumerate(items):
            for part in parts:
                values[f"{name}-{index}-{part}"] = item.get(part, "")
        for index in range(len(items), len(items) + EMPTY_ROWS):
            for part in parts:
                values[f"{name}-{index}-{part}"] = ROW_DEFAULTS[name].get(part, "")
        counts[name] = len(items) + EMPTY_ROWS
    return counts


def deal_values(deal: Opportunity) -> dict[str, Any]:
    """What the form shows for a stored deal (text, as the inputs hold it)."""
    values: dict[str, Any] = {
        name: "" if getattr(deal, name) is None else str(getattr(deal, name))
        for name in FORM_FIELDS
    }
    values["amount"] = _money_text(deal.amount)
    values["expected_close"] = deal.expected_close.isoformat() if deal.expected_close else ""
    values["committed"] = "1" if deal.committed else ""
    values["version"] = str(deal.version)
    return values


def deal_rows(deal: Opportunity) -> dict[str, list[dict[str, str]]]:
    """A stored deal's contacts and lines as the form's rows (text)."""
    return {
        "contacts": [{"contact_id": str(c.contact_id), "role": c.role} for c in deal.contacts],
        "lines": [
            {
                "description": line.description,
                "quantity": _plain(line.quantity),
                "unit_price": _money_text(line.unit_price),
                "discount_percent": _plain(line.discount_percent),
                "product_id": str(line.product_id or ""),
            }
            for line in deal.lines
        ],
    }


def form_errors(messages: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, list[str]]:
    """The service's messages by form field: a row's beside that row's field."""
    errors: dict[str, list[str]] = {}
    for name, value in messages.items():
        key = str(name)
        if key in ROWS and isinstance(value, Mapping):
            for index, inner in value.items():
                if isinstance(inner, Mapping):
                    for part, texts in inner.items():
                        shown = part in ROWS[key] and part != "product_id"
                        target = f"{key}-{index}-{part}" if shown else key
                        errors.setdefault(target, []).extend(_texts(texts))
                else:
                    errors.setdefault(key, []).extend(_texts(inner))
        else:
            errors.setdefault(key, []).extend(_texts(value))
    if "customer_id" in errors and not str(values.get("customer_id", "")).strip():
        errors["customer_id"] = [_("Give the customer's number.")]
    return errors


def _texts(value: Any) -> list[str]:
    """Every message in ``value``, in the request's language."""
    return field_errors({"_": value})["_"]


def is_form_field(name: str) -> bool:
    """Whether the form shows errors of ``name`` beside a field (else above the form)."""
    return name in FORM_FIELDS or name in FLAGS or name.split("-", 1)[0] in ROWS


def form_differences(
    stored: Mapping[str, Any],
    stored_rows: Mapping[str, list[dict[str, str]]],
    data: Mapping[str, Any],
    values: Mapping[str, Any],
) -> list[Difference]:
    """The fields where the stored deal and the user's form differ, as text."""
    found = differences(stored, values, FORM_FIELDS, FIELD_LABELS)
    yes_no = {flag: {"": _("no"), "1": _("yes")} for flag in FLAGS}
    found += differences(
        {flag: yes_no[flag][stored.get(flag) or ""] for flag in FLAGS},
        {flag: yes_no[flag][values.get(flag) or ""] for flag in FLAGS},
        FLAGS, FIELD_LABELS,
    )
    theirs = _rows_text(stored_rows)
    yours = _rows_text({
        "contacts": [{"contact_id": str(row["contact_id"]), "role": row["role"]}
                     for row in data.get("contacts", [])],
        "lines": [{key: str(value or "") for key, value in row.items()}
                  for row in data.get("lines", [])],
    })
    for name in ROWS:
        if theirs[name] != yours[name]:
            found.append(Difference(str(FIELD_LABELS[name]), theirs[name], yours[name]))
    return found


def _rows_text(rows: Mapping[str, list[Mapping[str, str]]]) -> dict[str, str]:
    contacts = "; ".join(
        f"{row['contact_id']} ({role_label(row.get('role'))})" for row in rows.get("contacts", [])
    )
    lines = "; ".join(
        f"{row.get('description', '')}: {_plain(_decimal(row.get('quantity'), '1'))} x "
        f"{_money_text(_decimal(row.get('unit_price'), '0'))}"
        f", -{_plain(_decimal(row.get('discount_percent'), '0'))}%"
        for row in rows.get("lines", [])
    )
    return {"contacts": contacts, "lines": lines}


def _decimal(text: str | None, default: str) -> Decimal | None:
    try:
        return Decimal(text or default)
    except ArithmeticError:
        return None
