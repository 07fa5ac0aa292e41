"""vCard 3.0 (RFC 2426) cards for contacts, written by hand: escaped and folded.

Each card has ``N``, ``FN``, ``ORG`` (the customer's name), ``TITLE``, one ``EMAIL``
per address and one ``TEL`` per number (their label as ``TYPE``), ``UID`` (the
contact's ``external_id``, when it has one: an import reads it back as such),
``X-CRM-ID`` (its id here) and ``REV`` (its last change). Text values escape ``\\``,
``,``, ``;`` and line breaks; lines longer than 75 octets are folded (CRLF and a
space), never inside a UTF-8 character. Lines end with CRLF.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

_ESCAPES = str.maketrans({"\\": "\\\\", ",": "\\,", ";": "\\;", "\n": "\\n", "\r": ""})
_NOT_IN_TYPE = re.compile(r"[^A-Za-z0-9-]+")
#: Longest line in octets, without its line break (RFC 2426 section 2.6).
MAX_LINE = 75


def escape(value: str) -> str:
    """A text value with ``\\``, ``,``, ``;`` and line breaks escaped."""
    return value.replace("\r\n", "\n").translate(_ESCAPES)


def fold(line: str) -> str:
    """``line`` with CRLF, folded into parts of at most 75 octets, never splitting a character."""
    data = line.encode("utf-8")
    if len(data) <= MAX_LINE:
        return line + "\r\n"
    parts: list[str] = []
    start, limit = 0, MAX_LINE
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1  # a continuation byte: cut before the character it belongs to
        parts.append(data[start:end].decode("utf-8"))
        start, limit = end, MAX_LINE - 1  # continuation lines start with a space
    return "\r\n ".join(parts) + "\r\n"


def type_parameter(label: str) -> str:
    """A label as a ``TYPE`` parameter value (``work`` -> ``WORK``, ``a b`` -> ``A-B``)."""
    cleaned = _NOT_IN_TYPE.sub("-", label).strip("-").upper()
    return cleaned or "OTHER"


def contact_card(contact: Mapping[str, Any], organisation: str | None) -> str:
    """The vCard of one contact (a record as exported to JSON Lines)."""
    first = contact.get("first_name") or ""
    last = contact.get("last_name") or ""
    full = " ".join(part for part in (first, last) if part)
    lines = [
        "BEGIN:VCARD",
        "VERSION:3.0",
        f"N:{escape(last)};{escape(first)};;;",
        f"FN:{escape(full)}",
    ]
    if organisation:
        lines.append(f"ORG:{escape(organisation)}")
    if contact.get("job_title"):
        lines.append(f"TITLE:{escape(contact['job_title'])}")
    for email in contact.get("emails") or ():
        lines.append(f"EMAIL;TYPE=INTERNET,{type_parameter(email['label'])}:{escape(email['email'])}")
    for phone in contact.get("phones") or ():
        lines.append(f"TEL;TYPE={type_parameter(phone['label'])}:{escape(phone['number'])}")
    if contact.get("external_id"):
        lines.append(f"UID:{escape(contact['external_id'])}")
    lines.append(f"X-CRM-ID:{contact['id']}")
    changed = contact.get("updated_at")
    if isinstance(changed, dt.datetime):
        lines.append(f"REV:{changed.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}")
    lines.append("END:VCARD")
    return "".join(fold(line) for line in lines)
