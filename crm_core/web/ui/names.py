"""What pages call users and customers by id: the names of a whole page in one query.

Also the users a record's *Owner* field offers (:func:`owner_options`).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from crm_core.authz import visible
from crm_core.models import Customer, User


def user_names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    """The names (else emails) of the users ``ids``; no query when there are none."""
    wanted = sorted({ident for ident in ids if ident is not None})
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.name, User.email).where(User.id.in_(wanted)))
    return {row.id: row.name or row.email for row in rows}


def customer_names(session: Session, user: User, ids: Iterable[int | None]) -> dict[int, str]:
    """The names of the customers among ``ids`` that ``user`` may see."""
    wanted = sorted({ident for ident in ids if ident is not None})
    if not wanted:
        return {}
    rows = session.execute(
        select(Customer.id, Customer.name).where(
            Customer.id.in_(wanted), visible(user, "customer")
        )
    )
    return {row.id: row.name for row in rows}


def owner_options(session: Session, current: int | None = None) -> list[tuple[int, str]]:
    """Active users as (id, name), and the ``current`` owner even when inactive (so saving
    keeps them), by name."""
    active_or_current = User.active.is_(True)
    if current is not None:
        active_or_current = or_(active_or_current, User.id == current)
    rows = session.execute(
        select(User.id, User.name, User.email).where(active_or_current)
        .order_by(User.name, User.id)
    )
    return [(row.id, row.name or row.email) for row in rows]
