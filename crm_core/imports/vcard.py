"""Reading contacts from vCard files (2.1, 3.0 and 4.0) with vobject.

A file is split into cards at ``BEGIN:VCARD``/``END:VCARD`` (nested cards stay inside
their parent), so that one broken card is one rejected row and the others import.
Only the properties a contact uses are handed to vobject: ``N``, ``FN``, ``EMAIL``,
``TEL``, ``TITLE``, ``ORG`` and ``UID`` (with group prefixes such as ``item1.EMAIL``);
photos, sounds, keys, addresses and notes are skipped with their continuation lines
(folded, quoted-printable soft breaks, 2.1 base64 blocks), so a malformed photo does
not cost the contact.

Each property line is decoded as UTF-8, else with its ``CHARSET`` parameter (Shift_JIS
cards of Japanese phones), else with the card's other charset or cp1252;
quoted-printable values are decoded by vobject (``allowQP``).

A card becomes ``first_name``/``last_name`` (``N``, else ``FN`` split at its last
space), ``emails`` and ``phones`` with their ``TYPE`` as label, ``job_title``
(``TITLE``), ``external_id`` (``UID``, without ``urn:uuid:``) and, when a customer has
exactly that name, ``customer_id`` (the first part of ``ORG``). Its line is the line of
its ``BEGIN:VCARD``.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import vobject

from crm_core.imports.mapping import MappedRow, Reference

#: Properties read from a card; the rest is skipped before vobject sees it.
KEEP = frozenset({"BEGIN", "END", "VERSION", "N", "FN", "EMAIL", "TEL", "TITLE", "ORG", "UID"})
#: The report names a vCard value by its property: field -> property.
COLUMNS = {
    "first_name": "N",
    "last_name": "N",
    "emails": "EMAIL",
    "phones": "TEL",
    "job_title": "TITLE",
    "external_id": "UID",
    "customer_id": "ORG",
}

_PROPERTY = re.compile(rb"^(?:[A-Za-z0-9-]+\.)?([A-Za-z0-9-]+)[;:]")
_CHARSET = re.compile(rb";\s*CHARSET=([A-Za-z0-9_\-]+)", re.IGNORECASE)
_QP = re.compile(rb"ENCODING=QUOTED-PRINTABLE|;QUOTED-PRINTABLE[;:]", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_ANGLE = re.compile(r"<([^<>]+@[^<>]+)>")
_IGNORED_TYPES = frozenset(
    {"internet", "pref", "x400", "voice", "msg", "text", "uri", "x-internet", "bbs", "modem"}
)
_LABELS = {"cell": "mobile", "iphone": "mobile", "main": "work", "x-mobile": "mobile"}


@dataclass
class Card:
    """The lines of one card as bytes, and the line of the file its BEGIN:VCARD is on."""

    line: int
    lines: list[bytes]
    closed: bool = True


class VcardSource:
    """A vCard file being read: its cards, lazily, and how many bytes were read."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.bytes_read = 0
        self.encoding = "utf-8"
        self.delimiter = ""
        self.header: list[str] = sorted(set(COLUMNS.values()))

    def cards(self) -> Iterator[Card]:
        """Every top-level card of the file, a card left open at the end included."""
        depth = 0
        card: Card | None = None
        for number, raw in enumerate(self._stream, start=1):
            self.bytes_read += len(raw)
            line = raw.rstrip(b"\r\n").rstrip(b"\r")
            upper = line.strip().upper()
            if upper == b"BEGIN:VCARD":
                if depth == 0:
                    card = Card(number, [])
                depth += 1
            if card is not None and depth > 0:
                card.lines.append(line)
            if upper == b"END:VCARD" and depth > 0:
                depth -= 1
                if depth == 0 and card is not None:
                    yield card
                    card = None
        if card is not None:
            card.closed = False
            yield card

    def rows(self) -> Iterator[MappedRow]:
        """Each card as a contact row (a broken card as a row with its reason)."""
        for card in self.cards():
            yield card_row(card)


def card_row(card: Card) -> MappedRow:
    """Turn one card into a contact row; what cannot be read is the row's error."""
    row = MappedRow(card.line, {}, {})
    if not card.closed:
        row.reject("", "The card has no END:VCARD (the file ends inside it).")
        return row
    try:
        text = _kept_text(card.lines)
        component = vobject.readOne(text, allowQP=True, ignoreUnreadable=True)
    except Exception as exc:  # vobject raises many kinds of errors on bad input
        row.reject("", f"Not a readable vCard: {_short(exc)}")
        return row
    try:
        _fill(row, component)
    except Exception as exc:
        row.reject("", f"Not a readable vCard: {_short(exc)}")
    return row


def _kept_text(lines: list[bytes]) -> str:
    """The card as text with only the kept properties and their continuation lines."""
    kept: list[str] = []
    keep = False
    in_qp = False
    charset = _card_charset(lines)
    depth = 0
    previous = b""
    current = charset
    for line in lines:
        continuation = (in_qp and previous.endswith(b"=")) or line[:1] in (b" ", b"\t")
        if not continuation:
            match = _PROPERTY.match(line)
            if match is None:
                keep = False  # junk (a comment, a 2.1 base64 block): skipped
                in_qp = False
                previous = line
                continue
            name = match.group(1).upper()
            if name == b"BEGIN" and line.strip().upper() == b"BEGIN:VCARD":
                depth += 1
            keep = name.decode("ascii") in KEEP and depth <= 1
            if name == b"END" and line.strip().upper() == b"END:VCARD":
                keep = depth <= 1
                depth -= 1
            in_qp = bool(_QP.search(line.split(b":", 1)[0]))
            line_charset = _CHARSET.search(line.split(b":", 1)[0])
            current = line_charset.group(1).decode("ascii") if line_charset else charset
        if keep:
            kept.append(_decode(line, current))
        previous = line
    return "\r\n".join(kept) + "\r\n"


def _card_charset(lines: list[bytes]) -> str:
    """The charset a card names (its first ``CHARSET=`` other than UTF-8), else cp1252."""
    for line in lines:
        match = _CHARSET.search(line.split(b":", 1)[0])
        if match is not None:
            name = match.group(1).decode("ascii")
            try:
                if codecs.lookup(name).name != "utf-8":
                    return name
            except LookupError:
                continue
    return "cp1252"


def _decode(line: bytes, charset: str) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return line.decode(charset, "replace")
    except LookupError:
        return line.decode("cp1252", "replace")


def _fill(row: MappedRow, card: Any) -> None:
    data = row.data
    values: dict[str, str] = {}
    contents = card.contents
    name = contents.get("n", [None])[0]
    if name is not None and name.value is not None:
        family = _join(getattr(name.value, "family", ""))
        given = _join(getattr(name.value, "given", ""))
        if family or given:
            data["last_name"] = family
            data["first_name"] = given
            values["N"] = f"{family};{given}"
    full = contents.get("fn", [None])[0]
    if full is not None and isinstance(full.value, str):
        values["FN"] = full.value
        if not data.get("first_name") and not data.get("last_name") and full.value.strip():
            first, _sep, last = full.value.strip().rpartition(" ")
            data["first_name"], data["last_name"] = first.strip(), last.strip()
    emails = []
    for line in contents.get("email", []):
        address = _email(line.value)
        if address and all(item["email"] != address for item in emails):
            emails.append({"email": address, "label": _label(line, "work")})
    phones = []
    for line in contents.get("tel", []):
        number = _phone(line.value)
        if number and all(item["number"] != number for item in phones):
            phones.append({"number": number, "label": _label(line, "work")})
    if emails:
        data["emails"] = emails
        values["EMAIL"] = ", ".join(item["email"] for item in emails)
    if phones:
        data["phones"] = phones
        values["TEL"] = ", ".join(item["number"] for item in phones)
    row.item_columns = {"emails": ["EMAIL"] * len(emails), "phones": ["TEL"] * len(phones)}
    title = contents.get("title", [None])[0]
    if title is not None and _join(title.value):
        data["job_title"] = values["TITLE"] = _join(title.value)
    uid = contents.get("uid", [None])[0]
    if uid is not None and _join(uid.value):
        ident = _join(uid.value)
        for prefix in ("urn:uuid:", "urn:UUID:"):
            ident = ident.removeprefix(prefix)
        data["external_id"] = values["UID"] = ident
    org = contents.get("org", [None])[0]
    if org is not None:
        parts = org.value if isinstance(org.value, list) else [org.value]
        company = _join(parts[0]) if parts else ""
        if company:
            values["ORG"] = company
            row.references = [Reference("customer_id", "customer.name", company, "ORG", True)]
    row.values = values


def _join(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(str(part).strip() for part in value if str(part).strip())
    return str(value or "").strip()


def _email(value: Any) -> str:
    text = _join(value)
    match = _ANGLE.search(text)
    if match:
        text = match.group(1)
    return text.removeprefix("mailto:").removeprefix("MAILTO:").strip().strip('"')


def _phone(value: Any) -> str:
    text = _join(value)
    text = text.removeprefix("tel:").removeprefix("TEL:").strip()
    if _SCHEME.match(text):
        return ""  # sip:, xmpp:... addresses are not phone numbers
    # Dialling pauses (``p``, ``w``, ``,``, ``;``) end the number; what follows is dialled later.
    return re.split(r"[pPwW,;]", text, maxsplit=1)[0].strip()


def _label(line: Any, default: str) -> str:
    types: list[str] = []
    for key, values in line.params.items():
        if key.upper() == "TYPE":
            for value in values:
                types.extend(part.strip() for part in str(value).split(","))
    types.extend(str(value) for value in line.singletonparams)
    for kind in types:
        lowered = kind.strip().lower()
        if lowered in _LABELS:
            return _LABELS[lowered]
        if lowered and lowered not in _IGNORED_TYPES and not lowered.startswith("x-"):
            return lowered[:40]
    return default


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
