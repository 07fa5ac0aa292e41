"""Delivery of outbox events to their consumers (webhooks, plugins' jobs), and webhooks."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Base, TimestampMixin, VersionedMixin, utcnow


class DeliveryStatus(enum.StrEnum):
    """Where the delivery of one event to one consumer stands."""

    PENDING = "pending"
    """Waiting for its (next) attempt, due at ``next_attempt_at``."""
    RUNNING = "running"
    """A worker is attempting it; another may take it over after ``lease_until``."""
    DELIVERED = "delivered"
    DEAD = "dead"
    """Gave up after the last attempt (dead letter); an admin can replay it."""


class EventDelivery(Base):
    """The delivery of one outbox event to one consumer: at most one row per pair."""

    __tablename__ = "event_delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "consumer"),
        Index("ix_event_delivery_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_event_delivery_consumer_id", "consumer", "id"),
        Index("ix_event_delivery_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("outbox_event.id", ondelete="CASCADE"))
    consumer: Mapped[str] = mapped_column(String(120))
    """``webhook:<id>`` for a webhook, the registered name for a plugin's consumer."""
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[dt.datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[dt.datetime | None]


class DeliveryAttempt(Base):
    """One attempt of a delivery: when, how long, and what the consumer answered."""

    __tablename__ = "delivery_attempt"
    __table_args__ = (Index("ix_delivery_attempt_delivery_id_id", "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("event_delivery.id", ondelete="CASCADE"))
    attempted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    duration_ms: Mapped[float] = mapped_column(default=0.0)
    ok: Mapped[bool] = mapped_column(default=False)
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)


class Webhook(TimestampMixin, VersionedMixin, Base):
    """A URL subscribed to event types; deliveries to it are signed with ``secret``."""

    __tablename__ = "webhook"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    event_types: Mapped[list[str]] = mapped_column(default=list)
    """Patterns: ``contact.created``, ``contact.*`` or ``*``."""
    secret: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    failure_streak: Mapped[int] = mapped_column(default=0)
    """Failed attempts since the last successful one."""
    last_success_at: Mapped[dt.datetime | None]
    last_failure_at: Mapped[dt.datetime | None]
    disabled_at: Mapped[dt.datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
