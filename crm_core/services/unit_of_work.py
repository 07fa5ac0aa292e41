"""The transaction every write runs in: audit entries and outbox events go in with it."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from crm_core.db import utcnow
from crm_core.errors import CRMError, HookError
from crm_core.models import AuditEntry, OutboxEvent, User
from crm_core.models.outbox import new_event_id

if TYPE_CHECKING:
    from crm_core.runtime import CRM


@dataclass(eq=False)
class RecordChange:
    """One record passing through a write: validated input, the row, and what changed.

    The same object is handed to ``crm_validate`` (before the write, ``record`` is
    the stored row or ``None`` on create) and to the ``crm_on_*`` hooks (after it).
    """

    index: int
    """Position of the record in its batch (the line of an import, 0 for one write)."""
    data: dict[str, Any]
    """The input as the schema loaded it, plugin fields included."""
    record: Any = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Each changed field mapped to ``(old, new)``; on create ``old`` is ``None``."""
    errors: dict[str, list[str]] = field(default_factory=dict)
    references: dict[str, Any] = field(default_factory=dict)
    """Rows the reference checks read, by field (``customer_id`` -> the customer's row),
    for the later steps of the same write (so they need not read them again)."""

    def reject(self, field_name: str, message: str) -> None:
        """Refuse this record because of ``field_name`` (``_schema`` for the whole record)."""
        self.errors.setdefault(field_name, []).append(message)

    @property
    def rejected(self) -> bool:
        """Whether a schema or a plugin refused this record."""
        return bool(self.errors)


class UnitOfWork:
    """A database transaction plus who is acting, and the audit and outbox of the writes.

    Get one from :meth:`crm_core.runtime.CRM.unit_of_work`; pass it to service functions.
    Everything written through it commits together or not at all.
    """

    def __init__(
        self, crm: CRM, session: Session, actor: User | None = None, source: str = "crm"
    ) -> None:
        self.crm = crm
        self.session = session
        self.actor = actor
        self.source = source
        self.committed_callbacks: list[Callable[[], Any]] = []

    def after_commit(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` once the transaction has committed (not if it rolls back).

        For work that must see the committed rows, e.g. queueing a job that reads them:
        ``uow.after_commit(lambda: jobs.enqueue(uow.crm, "crm_core.import", job_id=job.id))``.
        """
        self.committed_callbacks.append(callback)

    @property
    def actor_id(self) -> int | None:
        """The acting user's id, or ``None`` for system work."""
        return self.actor.id if self.actor is not None else None

    def call_hook(self, name: str, **kwargs: Any) -> list[Any]:
        """Call hook ``name``; a raising implementation becomes a :class:`HookError`.

        The caller's transaction is then rolled back by :meth:`CRM.unit_of_work`.
        """
        caller = getattr(self.crm.pm.hook, name)
        try:
            return caller(**kwargs)
        except CRMError:
            raise
        except Exception as exc:
            plugin = self.crm.plugins.blame(name, exc)
            raise HookError(name, plugin, exc) from exc

    def record(
        self,
        entity: str,
        action: str,
        items: Sequence[tuple[Any, Mapping[str, Any]]],
        payloads: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Write the audit entries and outbox events of ``action`` on ``entity``, in bulk.

        ``items`` holds ``(entity_id, field_changes)`` pairs, field changes as
        ``{field: [old, new]}``; ``payloads`` (one per item) become the events' bodies.
        """
        if not items:
            return
        now = utcnow()
        audit_rows = []
        event_rows = []
        for position, (entity_id, changes) in enumerate(items):
            json_changes = {key: [_jsonable(o), _jsonable(n)] for key, (o, n) in changes.items()}
            audit_rows.append(
                {
                    "occurred_at": now,
                    "actor_id": self.actor_id,
                    "source": self.source,
                    "entity": entity,
                    "entity_id": str(entity_id),
                    "action": action,
                    "changes": json_changes,
                }
            )
            payload = dict(payloads[position]) if payloads else {"id": entity_id}
            event_rows.append(
                {
                    "id": new_event_id(),
                    "type": f"{entity}.{action}",
                    "entity": entity,
                    "entity_id": str(entity_id),
                    "payload": {"changes": json_changes, **_jsonable(payload)},
                    "actor_id": self.actor_id,
                    "occurred_at": now,
                    "available_at": now,
                }
            )
        # Core executemany: these rows are never read back in this transaction.
        connection = self.session.connection()
        connection.execute(_AUDIT_INSERT, audit_rows)
        connection.execute(_EVENT_INSERT, event_rows)


#: Built once: building a statement costs more than sending it.
_AUDIT_INSERT = insert(AuditEntry.__table__)
_EVENT_INSERT = insert(OutboxEvent.__table__)

_PLAIN = frozenset({str, int, float, bool})


def _jsonable(value: Any) -> Any:
    """Turn dates, decimals and enums into JSON-friendly values."""
    if value is None or type(value) in _PLAIN:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


@contextmanager
def transaction(
    crm: CRM, actor: User | None, source: str, *, write: bool = True
) -> Iterator[UnitOfWork]:
    """Open a session and a transaction; commit on success, roll back on any error.

    With ``write``, the session is :meth:`CRM.write_session`'s: on SQLite the
    transaction takes the write lock when its first statement runs (``BEGIN
    IMMEDIATE``), so a unit of work that reads and then writes never fails because
    another one wrote meanwhile. Without, it is a plain session (deferred ``BEGIN``).
    """
    session_factory = crm.write_session if write else crm.session_factory
    with session_factory() as session:
        with session.begin():
            unit = UnitOfWork(crm, session, actor=actor, source=source)
            yield unit
        for callback in unit.committed_callbacks:
            callback()
