"""The transactional outbox: domain events written in the same transaction as the change."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Base, utcnow


class OutboxStatus(enum.StrEnum):
    """Delivery state of an outbox event."""

    PENDING = "pending"
    DISPATCHED = "dispatched"
    DEAD = "dead"


def new_event_id() -> str:
    """A fresh, globally unique event id (consumers use it to stay idempotent)."""
    return str(uuid.uuid4())


class OutboxEvent(Base):
    """A domain event (``customer.created``...) waiting to be relayed to the task queue."""

    __tablename__ = "outbox_event"
    __table_args__ = (
        Index("ix_outbox_event_status_available_at", "status", "available_at"),
        Index("ix_outbox_event_occurred_at_id", "occurred_at", "id"),
        Index("ix_outbox_event_entity_entity_id_occurred_at", "entity", "entity_id", "occurred_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_event_id)
    type: Mapped[str] = mapped_column(String(120), index=True)
    entity: Mapped[str] = mapped_column(String(80))
    entity_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default=OutboxStatus.PENDING.value)
    available_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
