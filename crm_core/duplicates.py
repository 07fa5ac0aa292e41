"""Duplicate suggestions: records that are probably the same customer or contact.

A candidate shares a normalised email address or phone number (E.164) with the
record, or has a similar name: names are compared without case, diacritics,
punctuation, word order and, for customers, legal forms (``ACME GmbH`` and
``Acme Inc.`` are both ``acme``). Emails and phones are indexed lookups; names come
from the search indexes (:func:`crm_core.search.similar_name_ids`), so nothing
scans a table. Only records ``actor`` may see, and not archived ones, are suggested.

The score combines the reasons as independent evidence: ``1 - (1 - e)(1 - p)(1 - n)``
with ``e`` = 0.9 for the same email, ``p`` = 0.8 for the same phone and ``n`` = 0.85 x
the name similarity (contacts: 0.6 x, plus 0.5 when they work for the same customer).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.authz import require, visible
from crm_core.errors import NotFoundError, ValidationError
from crm_core.ids import as_record_id
from crm_core.models import Contact, ContactEmail, ContactPhone, Customer
from crm_core.search import active, fold, similar_name_ids

if TYPE_CHECKING:
    from crm_core.models import User

#: How alike (0..1) two names must be to suggest a duplicate by name.
NAME_THRESHOLD = 0.8
#: The most suggestions one call returns.
MAX_LIMIT = 100

#: Legal forms and filler words left out when comparing company names.
LEGAL_FORMS = frozenset(
    [
        "ab",
        "ag",
        "aps",
        "as",
        "asa",
        "bv",
        "co",
        "company",
        "corp",
        "corporation",
        "cv",
        "eg",
        "ek",
        "ev",
        "gbr",
        "gesmbh",
        "gmbh",
        "inc",
        "incorporated",
        "kft",
        "kg",
        "kgaa",
        "limited",
        "llc",
        "llp",
        "lp",
        "ltd",
        "mbh",
        "nv",
        "ohg",
        "oy",
        "oyj",
        "plc",
        "pllc",
        "pte",
        "pty",
        "sa",
        "sarl",
        "sas",
        "se",
        "sl",
        "slu",
        "spa",
        "sro",
        "srl",
        "the",
        "ug",
        "zrt",
    ]
)

_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class DuplicateCandidate:
    """A record that is probably the same as the one asked about."""

    entity: str
    id: int
    title: str
    score: float
    """0..1: how sure the suggestion is."""
    reasons: tuple[str, ...]
    """Why: ``email``, ``phone``, ``name`` (and ``customer`` for contacts of one customer)."""
    name_similarity: float
    """How alike the names are (0..1), whether or not that is a reason."""
    record: Any
    """The :class:`~crm_core.models.Customer` or :class:`~crm_core.models.Contact`."""


def customer_name_key(name: str) -> str:
    """A customer's name reduced for comparison: folded words, sorted, legal forms left out.

    ``"ACME GmbH & Co. KG"`` -> ``"acme"``; a name of nothing but legal forms keeps them.
    """
    tokens = _WORD.findall(fold(name.replace(".", "").replace("'", "")))
    core = [token for token in tokens if token not in LEGAL_FORMS]
    return " ".join(sorted(core or tokens))


def contact_name_key(first_name: str, last_name: str) -> str:
    """A contact's full name reduced for comparison: folded words, sorted."""
    return " ".join(sorted(_WORD.findall(fold(f"{first_name} {last_name}"))))


def similarity(left: str, right: str) -> float:
    """How alike two name keys are, 0..1 (``difflib``'s ratio)."""
    if not left or not right:
        return 0.0
    if left == right:
        return 1.0
    return difflib.SequenceMatcher(None, left, right).ratio()


def customer_duplicates(
    session: Session, actor: User | None, customer_id: Any, limit: int = 10
) -> list[DuplicateCandidate]:
    """Customers that are probably the same as ``customer_id``, most likely first.

    Needs ``customer.view``; a customer ``actor`` may not see is a
    :class:`NotFoundError`.
    """
    require(actor, "customer.view")
    limit = _clamp(limit)
    where = (active(Customer), visible(actor, "customer"))
    customer = _one(session, Customer, "customer", customer_id, visible(actor, "customer"))
    evidence: dict[int, dict[str, float]] = {}

    def note(ids: Iterable[int], reason: str, weight: float) -> None:
        for ident in ids:
            if ident != customer.id:
                evidence.setdefault(ident, {})[reason] = weight

    if customer.email:
        note(_ids(session, Customer, Customer.email == customer.email, where), "email", 0.9)
    if customer.phone_e164:
        note(
            _ids(session, Customer, Customer.phone_e164 == customer.phone_e164, where), "phone", 0.8
        )
    elif customer.phone:
        note(_ids(session, Customer, Customer.phone == customer.phone, where), "phone", 0.8)
    key = customer_name_key(customer.name)
    candidates = similar_name_ids(session, "customer", key or customer.name)
    evidence.update(
        {ident: evidence.get(ident, {}) for ident in candidates if ident != customer.id}
    )
    records = _load(session, Customer, evidence, where)
    found = []
    for record in records:
        alike = similarity(key, customer_name_key(record.name))
        reasons = dict(evidence[record.id])
        if alike >= NAME_THRESHOLD:
            reasons["name"] = 0.85 * alike
        if reasons:
            found.append(_candidate("customer", record, record.name, reasons, alike))
    return _best(found, limit)


def contact_duplicates(
    session: Session, actor: User | None, contact_id: Any, limit: int = 10
) -> list[DuplicateCandidate]:
    """Contacts that are probably the same person as ``contact_id``, most likely first.

    Needs ``contact.view``; a contact ``actor`` may not see is a :class:`NotFoundError`.
    """
    require(actor, "contact.view")
    limit = _clamp(limit)
    where = (active(Contact), visible(actor, "contact"))
    contact = _one(session, Contact, "contact", contact_id, visible(actor, "contact"))
    evidence: dict[int, dict[str, float]] = {}

    def note(ids: Iterable[int], reason: str, weight: float) -> None:
        for ident in ids:
            if ident != contact.id:
                evidence.setdefault(ident, {})[reason] = weight

    emails = sorted({row.email for row in contact.emails})
    if emails:
        same = select(ContactEmail.contact_id).where(ContactEmail.email.in_(emails))
        note(_ids(session, Contact, Contact.id.in_(same), where), "email", 0.9)
    numbers = sorted({row.e164 for row in contact.phones if row.e164})
    if numbers:
        same = select(ContactPhone.contact_id).where(ContactPhone.e164.in_(numbers))
        note(_ids(session, Contact, Contact.id.in_(same), where), "phone", 0.8)
    key = contact_name_key(contact.first_name, contact.last_name)
    if key:
        for ident in similar_name_ids(session, "contact", key):
            if ident != contact.id:
                evidence.setdefault(ident, {})
    records = _load(session, Contact, evidence, where)
    found = []
    for record in records:
        alike = similarity(key, contact_name_key(record.first_name, record.last_name))
        reasons = dict(evidence[record.id])
        if alike >= NAME_THRESHOLD:
            reasons["name"] = 0.6 * alike
            if contact.customer_id is not None and record.customer_id == contact.customer_id:
                reasons["customer"] = 0.5
        if reasons:
            found.append(_candidate("contact", record, record.full_name, reasons, alike))
    return _best(found, limit)


def _one(session: Session, model: Any, entity: str, record_id: Any, where: Any) -> Any:
    ident = as_record_id(record_id)
    record = (
        session.scalars(select(model).where(model.id == ident, where)).first()
        if ident is not None
        else None
    )
    if record is None:
        raise NotFoundError(entity, record_id)
    return record


def _ids(session: Session, model: Any, clause: Any, where: tuple[Any, ...]) -> list[int]:
    return list(session.scalars(select(model.id).where(clause, *where).limit(MAX_LIMIT)))


def _load(
    session: Session, model: Any, evidence: dict[int, Any], where: tuple[Any, ...]
) -> list[Any]:
    if not evidence:
        return []
    return list(session.scalars(select(model).where(model.id.in_(list(evidence)), *where)))


def _candidate(
    entity: str, record: Any, title: str, reasons: dict[str, float], alike: float
) -> DuplicateCandidate:
    remaining = 1.0
    for weight in reasons.values():
        remaining *= 1.0 - weight
    order = ("email", "phone", "name", "customer")
    return DuplicateCandidate(
        entity=entity,
        id=record.id,
        title=title,
        score=round(1.0 - remaining, 3),
        reasons=tuple(reason for reason in order if reason in reasons),
        name_similarity=round(alike, 3),
        record=record,
    )


def _best(found: list[DuplicateCandidate], limit: int) -> list[DuplicateCandidate]:
    found.sort(key=lambda c: (-c.score, fold(c.title), c.id))
    return found[:limit]


def _clamp(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError({"limit": [f"Give a whole number from 1 to {MAX_LIMIT}."]})
    return limit


__all__ = [
    "LEGAL_FORMS",
    "NAME_THRESHOLD",
    "DuplicateCandidate",
    "contact_duplicates",
    "contact_name_key",
    "customer_duplicates",
    "customer_name_key",
    "similarity",
]
