"""Customers: the companies and people the CRM is about."""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_core.db import Base, TimestampMixin, VersionedMixin


class CustomerKind(enum.StrEnum):
    """Whether a customer is an organisation or a private person."""

    COMPANY = "company"
    PERSON = "person"


class LifecycleStage(enum.StrEnum):
    """Where a customer stands in the relationship."""

    LEAD = "lead"
    PROSPECT = "prospect"
    CUSTOMER = "customer"
    FORMER = "former"


class Customer(TimestampMixin, VersionedMixin, Base):
    """A company or a person the business sells to or serves."""

    __tablename__ = "customer"
    __table_args__ = (
        Index("ix_customer_archived_name", "archived", "name"),
        Index("ix_customer_owner_id_name", "owner_id", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default=CustomerKind.COMPANY.value)
    name: Mapped[str] = mapped_column(String(300), index=True)
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True, index=True)
    """The customer's id in another system (an ERP, the CRM it was imported from)."""
    phone: Mapped[str | None] = mapped_column(String(50), index=True)
    phone_e164: Mapped[str | None] = mapped_column(String(20), index=True)
    """``phone`` in E.164 form (``+4930123456``), for duplicate detection and search."""
    website: Mapped[str | None] = mapped_column(String(500))
    street: Mapped[str | None] = mapped_column(String(300))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(120))
    region: Mapped[str | None] = mapped_column(String(120))
    country: Mapped[str | None] = mapped_column(String(2))
    industry: Mapped[str | None] = mapped_column(String(120))
    lifecycle_stage: Mapped[str] = mapped_column(
        String(20), default=LifecycleStage.LEAD.value, index=True
    )
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    archived: Mapped[bool] = mapped_column(default=False)
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("customer.id", ondelete="SET NULL"), index=True
    )
    tag_rows: Mapped[list[CustomerTag]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="CustomerTag.tag"
    )

    @property
    def tags(self) -> list[str]:
        """The customer's tags, sorted."""
        return [row.tag for row in self.tag_rows]

    def __repr__(self) -> str:
        return f"<Customer {self.id} {self.name!r}>"


class CustomerTag(Base):
    """One tag on one customer; indexed by tag so lists can filter on it."""

    __tablename__ = "customer_tag"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(80), primary_key=True, index=True)
