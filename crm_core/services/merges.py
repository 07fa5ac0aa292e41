"""Undoing a merge, from the audit entry the merge left.

``customers.merge`` / ``contacts.merge`` write one ``merged`` audit entry on the
survivor: each survivor field the merge changed as ``[old, new]``, the merged ids
(``merged_ids``) and what moved (``moved``: by kind, by merged record, the ids;
plugins' moves under their own keys). :func:`undo_merge` plays it backwards:
contacts and interactions go back to the records they came from, the survivor gets
its old values (tags, attributes, emails and phone numbers included), the merged
records come back (not archived, ``merged_into_id`` cleared), plugins move their
references back (``crm_on_<entities>_merge_undone``), and a ``merge_undone`` audit
entry and outbox event are written, all in the caller's transaction.

When it is refused: undoing must not silently throw away work done since the
merge, so it is refused (:class:`ValidationError`, every reason listed) when

- the merge was undone already;
- a field the merge changed on the survivor has been changed again since (other
  fields may have changed: they are kept);
- a merged record is no longer archived and merged into the survivor (restored or
  merged elsewhere), or the survivor has been merged into another record since;
- a contact or interaction the merge moved has been moved to another record since.

Records and links created after the merge stay with the survivor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from crm_core.authz import require, visible
from crm_core.errors import NotFoundError, ValidationError
from crm_core.i18n import N_
from crm_core.ids import as_record_id
from crm_core.models import AuditEntry, Contact, Interaction
from crm_core.services.contacts import ContactService
from crm_core.services.customers import CustomerService
from crm_core.services.records import RecordService
from crm_core.services.unit_of_work import UnitOfWork

#: The entities whose merges can be undone, and their services.
SERVICES: dict[str, RecordService[Any]] = {
    "customer": CustomerService(),
    "contact": ContactService(),
}

#: What core's merges move, per merged entity: kind -> (model, the column pointing at it).
REFERENCES: dict[str, dict[str, tuple[Any, Any]]] = {
    "customer": {
        "contact": (Contact, Contact.customer_id),
        "interaction": (Interaction, Interaction.customer_id),
    },
    "contact": {"interaction": (Interaction, Interaction.contact_id)},
}

_BOOKKEEPING = frozenset({"merged_ids", "moved"})


@dataclass(frozen=True)
class UndoneMerge:
    """What :func:`undo_merge` did: the survivor as it was, and the records it brought back."""

    survivor: Any
    restored: list[Any]
    audit_entry_id: int
    """The ``merged`` audit entry that was undone."""


def merge_id(uow: UnitOfWork, entity: str, survivor_id: int) -> int | None:
    """The id of the latest ``merged`` audit entry of ``survivor_id``: what undoes that merge.

    Called right after ``customers.merge`` / ``contacts.merge`` in the same unit of
    work, it names the merge just made (concurrent merges of one survivor conflict on
    its version, so they cannot interleave).
    """
    return uow.session.scalar(
        select(AuditEntry.id)
        .where(
            AuditEntry.entity == entity,
            AuditEntry.entity_id == str(survivor_id),
            AuditEntry.action == "merged",
        )
        .order_by(AuditEntry.id.desc())
        .limit(1)
    )


def undo_merge(uow: UnitOfWork, entity: str, audit_entry_id: Any) -> UndoneMerge:
    """Undo the merge recorded in audit entry ``audit_entry_id`` of ``entity``.

    ``entity`` is ``customer`` or ``contact``. Needs ``<entity>.merge``; the entry
    must be a ``merged`` entry of ``entity`` whose records ``uow.actor`` may see,
    else :class:`NotFoundError`. Refused with :class:`ValidationError` when undoing
    would lose later work (see the module docs).
    """
    service = SERVICES.get(entity)
    if service is None:
        raise ValidationError({"entity": [f"Merges of {entity!r} cannot be undone."]})
    require(uow.actor, f"{entity}.merge")
    ident = as_record_id(audit_entry_id)
    entry = uow.session.get(AuditEntry, ident) if ident is not None else None
    if entry is None or entry.entity != entity or entry.action != "merged":
        raise NotFoundError("merge", audit_entry_id)
    survivor = service.get(uow, entry.entity_id)
    changes: dict[str, Any] = entry.changes
    merged_ids = [int(i) for i in changes.get("merged_ids", [None, []])[1]]
    moved: dict[str, Any] = changes.get("moved", [None, {}])[1] or {}
    fields = {name: pair for name, pair in changes.items() if name not in _BOOKKEEPING}
    model = service.model
    found = {
        record.id: record
        for record in uow.session.scalars(
            select(model).where(model.id.in_(merged_ids), visible(uow.actor, entity))
        )
    }
    for merged_id in merged_ids:
        if merged_id not in found:
            raise NotFoundError(entity, merged_id)
    restored = [found[merged_id] for merged_id in merged_ids]

    problems = _problems(uow, service, entry, survivor, restored, fields, moved)
    if problems:
        raise ValidationError({"_schema": problems})

    service.apply(uow, survivor, {name: old for name, (old, _new) in fields.items()})
    for kind, (reference_model, column) in REFERENCES[entity].items():
        for merged_id, ids in (moved.get(kind) or {}).items():
            if ids:
                uow.session.execute(
                    update(reference_model)
                    .where(reference_model.id.in_(ids))
                    .values({column.key: int(merged_id), "version": reference_model.version + 1})
                    .execution_options(synchronize_session="fetch")
                )
    for record in restored:
        record.archived = False
        record.merged_into_id = None
    service._flush(uow, [survivor, *restored])

    reverted: dict[str, tuple[Any, Any]] = {name: (new, old) for name, (old, new) in fields.items()}
    reverted["undone_entry_id"] = (None, entry.id)
    reverted["restored_ids"] = (None, merged_ids)
    uow.record(entity, "merge_undone", [(survivor.id, reverted)])
    uow.record(
        entity,
        "merge_undone",
        [
            (record.id, {"merged_into_id": (survivor.id, None), "archived": (True, False)})
            for record in restored
        ],
    )
    uow.call_hook(
        f"crm_on_{service.plural}_merge_undone",
        uow=uow,
        survivor=survivor,
        restored=restored,
        moved=moved,
    )
    return UndoneMerge(survivor, restored, entry.id)


def _problems(
    uow: UnitOfWork,
    service: RecordService[Any],
    entry: AuditEntry,
    survivor: Any,
    restored: list[Any],
    fields: dict[str, Any],
    moved: dict[str, Any],
) -> list[str]:
    entity = entry.entity
    undone = uow.session.scalars(
        select(AuditEntry.changes).where(
            AuditEntry.entity == entity,
            AuditEntry.entity_id == entry.entity_id,
            AuditEntry.id > entry.id,
            AuditEntry.action == "merge_undone",
        )
    )
    if any((changes.get("undone_entry_id") or [None, None])[1] == entry.id for changes in undone):
        return [N_("This merge has been undone already.")]
    problems = []
    if survivor.merged_into_id is not None:
        problems.append(
            f"{entity} {survivor.id} has been merged into {entity} {survivor.merged_into_id} "
            "since: undo that merge first."
        )
    for record in restored:
        if not record.archived or record.merged_into_id != survivor.id:
            problems.append(
                f"{entity} {record.id} is no longer merged into {entity} {survivor.id}."
            )
    for name, (_old, new) in fields.items():
        if _plain(service.current(survivor, name)) != _plain(new):
            problems.append(f"{name!r} has been changed since the merge.")
    for kind, (reference_model, column) in REFERENCES[entity].items():
        ids = [i for ids in (moved.get(kind) or {}).values() for i in ids]
        if not ids:
            continue
        still = uow.session.scalar(
            select(func.count())
            .select_from(reference_model)
            .where(reference_model.id.in_(ids), column == survivor.id)
        )
        if still != len(ids):
            problems.append(
                f"{len(ids) - (still or 0)} of the {kind}s the merge moved "
                f"have been moved again since."
            )
    return problems


def _plain(value: Any) -> Any:
    """``value`` as the audit trail stores it (JSON), to compare with recorded values."""
    return json.loads(json.dumps(value, default=str))


__all__ = ["REFERENCES", "SERVICES", "UndoneMerge", "undo_merge"]
