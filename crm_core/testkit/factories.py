"""Factories for core's records in tests: through the services, so validation and hooks run.

Each takes a :class:`~crm_core.runtime.CRM` (the write gets a unit of work of its own,
source ``test``, committed at once) or a :class:`~crm_core.services.unit_of_work.UnitOfWork`
(the write joins it), fills in what the test does not care about, and returns the record.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from crm_core.services.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from crm_core.models import Contact, Customer, Interaction, User
    from crm_core.runtime import CRM

_numbers = itertools.count(1)


@contextmanager
def _unit(crm_or_uow: CRM | UnitOfWork, actor: User | None) -> Iterator[UnitOfWork]:
    """``crm_or_uow`` itself if it is a unit of work, else a new one on the CRM."""
    if isinstance(crm_or_uow, UnitOfWork):
        if actor is not None:
            raise TypeError("actor= is for a CRM; a unit of work has its actor already")
        yield crm_or_uow
        return
    with crm_or_uow.unit_of_work(actor=actor, source="test") as unit:
        yield unit


def make_customer(
    crm_or_uow: CRM | UnitOfWork, *, actor: User | None = None, **fields: Any
) -> Customer:
    """A new customer: ``fields`` as ``customers.create`` takes them, a unique name by default.

    ``make_customer(crm, city="Lund")``; ``actor`` (with a CRM) is who creates it
    (and, unless ``owner_id`` is given, owns it).
    """
    from crm_core.services import customers

    data = {"name": f"Customer {next(_numbers)}", **fields}
    with _unit(crm_or_uow, actor) as uow:
        return customers.create(uow, data)


def make_contact(
    crm_or_uow: CRM | UnitOfWork, *, actor: User | None = None, **fields: Any
) -> Contact:
    """A new contact: ``fields`` as ``contacts.create`` takes them, a unique name by default.

    ``make_contact(crm, customer_id=acme.id, emails=[{"email": "ann@acme.example"}])``;
    without ``customer_id`` the contact is at no customer.
    """
    from crm_core.services import contacts

    data = {"first_name": "Alex", "last_name": f"Contact {next(_numbers)}", **fields}
    with _unit(crm_or_uow, actor) as uow:
        return contacts.create(uow, data)


def make_interaction(
    crm_or_uow: CRM | UnitOfWork, *, actor: User | None = None, **fields: Any
) -> Interaction:
    """A new interaction: a ``note`` happening now, at a new customer unless ``customer_id``.

    ``make_interaction(crm, customer_id=acme.id, channel="call", subject="Spring order")``;
    ``occurred_at`` takes an aware :class:`datetime.datetime` or an ISO 8601 string.
    """
    from crm_core.services import interactions

    data: dict[str, Any] = {"channel": "note", **fields}
    occurred_at = data.get("occurred_at", dt.datetime.now(dt.UTC))
    if isinstance(occurred_at, dt.datetime):
        occurred_at = occurred_at.isoformat()
    data["occurred_at"] = occurred_at
    with _unit(crm_or_uow, actor) as uow:
        if "customer_id" not in data:
            data["customer_id"] = make_customer(uow).id
        return interactions.create(uow, data)
