"""Interactions: every touchpoint with a customer, on every channel."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Base, TimestampMixin, VersionedMixin


class Direction(enum.StrEnum):
    """Who started the interaction: the customer (``in``) or we (``out``)."""

    IN = "in"
    OUT = "out"


#: The channels core knows; plugins add more through ``crm_register_channels``.
CORE_CHANNELS = (
    "call",
    "email",
    "meeting",
    "note",
    "letter",
    "chat",
    "sms",
    "web",
    "purchase",
    "ticket",
)


class Interaction(TimestampMixin, VersionedMixin, Base):
    """One call, mail, meeting, purchase... with a customer and optionally a contact."""

    __tablename__ = "interaction"
    __table_args__ = (
        UniqueConstraint("source", "external_ref"),
        Index("ix_interaction_customer_id_occurred_at", "customer_id", "occurred_at", "id"),
        Index("ix_interaction_contact_id_occurred_at", "contact_id", "occurred_at"),
        Index("ix_interaction_user_id_occurred_at", "user_id", "occurred_at"),
        Index("ix_interaction_archived_occurred_at", "archived", "occurred_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(40), index=True)
    direction: Mapped[str | None] = mapped_column(String(3))
    occurred_at: Mapped[dt.datetime]
    subject: Mapped[str] = mapped_column(String(500), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(80), default="crm")
    external_ref: Mapped[str | None] = mapped_column(String(200))
    archived: Mapped[bool] = mapped_column(default=False)
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("interaction.id", ondelete="SET NULL"), index=True
    )

    def __repr__(self) -> str:
        return f"<Interaction {self.id} {self.channel} {self.occurred_at:%Y-%m-%d}>"
