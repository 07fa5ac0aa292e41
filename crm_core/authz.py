"""Authorization: permissions from roles, and which records a user may see.

Services call :func:`require` before every write and filter every read with
:func:`visible`; the API, the UI, importers and exports all go through them, so a
rule cannot be skipped. ``actor=None`` is the system itself (migrations, CLI
administration, background jobs) and may do anything.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, true

from crm_core.errors import PermissionDenied
from crm_core.models import Contact, Customer, Interaction, User, Visibility


def require(actor: User | None, permission: str) -> None:
    """Raise :class:`PermissionDenied` unless ``actor`` has ``permission``."""
    if actor is not None and permission not in actor.permissions:
        raise PermissionDenied(f"you need the permission {permission!r}")


def has_permission(actor: User | None, permission: str) -> bool:
    """Whether ``actor`` has ``permission`` (the system always has)."""
    return actor is None or permission in actor.permissions


def owned_by_visible_users(actor: User | None, owner_column: Any) -> ColumnElement[bool]:
    """A filter on ``owner_column`` for ``actor``'s visibility: own, team's, or everything.

    Plugins use it for their own entities: ``select(Deal).where(owned_by_visible_users(
    actor, Deal.owner_id))``.
    """
    if actor is None:
        return true()
    level = actor.visibility
    if level is Visibility.ALL:
        return true()
    if level is Visibility.TEAM and actor.team_id is not None:
        team = select(User.id).where(User.team_id == actor.team_id)
        return owner_column.in_(team)
    return owner_column == actor.id


def visible(actor: User | None, entity: str) -> ColumnElement[bool]:
    """The filter that keeps the records of ``entity`` that ``actor`` may see.

    Customers by their owner; contacts by their customer (or, without one, their own
    owner); interactions by their customer.
    """
    if actor is None or actor.visibility is Visibility.ALL:
        return true()
    customers = select(Customer.id).where(owned_by_visible_users(actor, Customer.owner_id))
    if entity == "customer":
        return owned_by_visible_users(actor, Customer.owner_id)
    if entity == "contact":
        return or_(
            Contact.customer_id.in_(customers),
            and_(Contact.customer_id.is_(None), owned_by_visible_users(actor, Contact.owner_id)),
        )
    if entity == "interaction":
        return Interaction.customer_id.in_(customers)
    raise ValueError(f"no visibility rule for {entity!r}")
