"""The audit trail: who changed what, when, field by field."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Base, utcnow


class AuditEntry(Base):
    """One change to one record: ``changes`` maps each field to ``[old, new]``."""

    __tablename__ = "audit_entry"
    __table_args__ = (
        Index("ix_audit_entry_entity_entity_id_id", "entity", "entity_id", "id"),
        Index("ix_audit_entry_actor_id_occurred_at", "actor_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(80))
    entity: Mapped[str] = mapped_column(String(80))
    entity_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)
