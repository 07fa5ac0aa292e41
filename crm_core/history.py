"""The audit history of one record: who changed which field from what to what, when, how.

Every write of the services leaves an :class:`~crm_core.models.AuditEntry` per record
(``created``, ``updated``, ``archived``, ``merged``, ``merged_into``,
``merge_undone``...), with the acting user, the source (``api``, ``ui``, ``import``,
``cli``, a plugin's name) and each changed field as ``[old, new]``. :func:`history`
reads them newest first, by keyset on the entry id (index
``ix_audit_entry_entity_entity_id_id``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from crm_core.authz import require, visible
from crm_core.errors import NotFoundError, ValidationError
from crm_core.i18n import N_
from crm_core.ids import MAX_ID, as_record_id
from crm_core.models import AuditEntry, Contact, Customer, Interaction, Role, Team, User

#: The largest page.
MAX_LIMIT = 500

#: Core's records with a visibility rule (:func:`crm_core.authz.visible`).
_RECORDS: dict[str, Any] = {"customer": Customer, "contact": Contact, "interaction": Interaction}
#: Core's administrative records: their history needs ``user.admin``.
_ADMINISTRATIVE: dict[str, Any] = {"user": User, "role": Role, "team": Team}


@dataclass(frozen=True)
class HistoryEntry:
    """One change of the record."""

    id: int
    occurred_at: dt.datetime
    action: str
    """``created``, ``updated``, ``archived``, ``merged``, ``merge_undone``..."""
    source: str
    """Where the change came from: ``api``, ``ui``, ``import``, ``cli``, a plugin's name."""
    actor_id: int | None
    """The user who made it (``None``: the system, or a user deleted since)."""
    actor_email: str | None
    changes: dict[str, Any]
    """Each changed field mapped to ``[old, new]``."""


@dataclass(frozen=True)
class HistoryPage:
    """A page of history; pass ``next_before_id`` as ``before_id`` for the next one."""

    entries: list[HistoryEntry]
    next_before_id: int | None


def history(
    session: Session,
    actor: User | None,
    entity: str,
    entity_id: Any,
    *,
    before_id: int | None = None,
    limit: int = 50,
    model: Any = None,
    visibility: ColumnElement[bool] | None = None,
) -> HistoryPage:
    """The audit entries of record ``entity_id`` of ``entity``, newest first.

    Needs ``audit.view``, and the record must be one ``actor`` may see: else
    :class:`NotFoundError`, as for a record that does not exist. Core's
    ``customer``, ``contact`` and ``interaction`` use their visibility rules; the
    history of a ``user``, ``role`` or ``team`` also needs ``user.admin``. For
    another entity (a plugin's), pass its ``model`` (with an ``id`` column) and its
    ``visibility`` clause for ``actor`` (or ``None`` for no restriction).

    ``before_id`` is the previous page's ``next_before_id``; ``limit`` is 1 to 500.
    """
    require(actor, "audit.view")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError({"limit": [f"Give a whole number from 1 to {MAX_LIMIT}."]})
    if before_id is not None and (
        isinstance(before_id, bool) or not isinstance(before_id, int) or not 0 < before_id <= MAX_ID
    ):
        raise ValidationError({"before_id": [N_("Give the id of an audit entry.")]})
    if model is None:
        if entity in _RECORDS:
            model = _RECORDS[entity]
            visibility = visible(actor, entity)
        elif entity in _ADMINISTRATIVE:
            require(actor, "user.admin")
            model = _ADMINISTRATIVE[entity]
        else:
            raise ValueError(f"{entity!r} is not a core entity: pass its model and visibility")
    ident = as_record_id(entity_id)
    statement = select(model.id).where(model.id == ident)
    if visibility is not None:
        statement = statement.where(visibility)
    if ident is None or session.scalar(statement) is None:
        raise NotFoundError(entity, entity_id)

    query = (
        select(AuditEntry, User.email)
        .outerjoin(User, User.id == AuditEntry.actor_id)
        .where(AuditEntry.entity == entity, AuditEntry.entity_id == str(ident))
    )
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    rows = session.execute(query.order_by(AuditEntry.id.desc()).limit(limit + 1)).all()
    entries = [
        HistoryEntry(
            id=entry.id,
            occurred_at=entry.occurred_at,
            action=entry.action,
            source=entry.source,
            actor_id=entry.actor_id,
            actor_email=email,
            changes=dict(entry.changes),
        )
        for entry, email in rows[:limit]
    ]
    next_before_id = entries[-1].id if len(rows) > limit else None
    return HistoryPage(entries, next_before_id)


__all__ = ["MAX_LIMIT", "HistoryEntry", "HistoryPage", "history"]
