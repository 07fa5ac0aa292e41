"""Contacts: people, usually at a customer, with several emails and phone numbers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_core.db import Base, TimestampMixin, VersionedMixin


class Contact(TimestampMixin, VersionedMixin, Base):
    """A person the business talks to, optionally working at a :class:`Customer`."""

    __tablename__ = "contact"
    __table_args__ = (
        Index("ix_contact_customer_id_last_name", "customer_id", "last_name"),
        Index("ix_contact_last_name_first_name", "last_name", "first_name"),
        Index("ix_contact_archived_last_name", "archived", "last_name", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="SET NULL"))
    first_name: Mapped[str] = mapped_column(String(120), default="")
    last_name: Mapped[str] = mapped_column(String(120), default="")
    job_title: Mapped[str | None] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True, index=True)
    """The contact's id in another system (an ERP, the CRM it was imported from)."""
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    consent_email: Mapped[bool] = mapped_column(default=False)
    consent_email_at: Mapped[dt.datetime | None]
    consent_phone: Mapped[bool] = mapped_column(default=False)
    consent_phone_at: Mapped[dt.datetime | None]
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    archived: Mapped[bool] = mapped_column(default=False)
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )
    emails: Mapped[list[ContactEmail]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ContactEmail.position"
    )
    phones: Mapped[list[ContactPhone]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ContactPhone.position"
    )

    @property
    def full_name(self) -> str:
        """First and last name, as one would write them."""
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    @property
    def primary_email(self) -> str | None:
        """The first of the contact's email addresses."""
        return self.emails[0].email if self.emails else None

    def __repr__(self) -> str:
        return f"<Contact {self.id} {self.full_name!r}>"


class ContactEmail(Base):
    """One labelled email address of a contact (``work``, ``home``...)."""

    __tablename__ = "contact_email"
    __table_args__ = (
        # A contact's list in its order, read from the index (no sort): lists, exports.
        Index("ix_contact_email_contact_id_position", "contact_id", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(40), default="work")
    email: Mapped[str] = mapped_column(String(254), index=True)
    position: Mapped[int] = mapped_column(default=0)


class ContactPhone(Base):
    """One labelled phone number of a contact (``work``, ``mobile``...)."""

    __tablename__ = "contact_phone"
    __table_args__ = (
        # A contact's list in its order, read from the index (no sort): lists, exports.
        Index("ix_contact_phone_contact_id_position", "contact_id", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(40), default="work")
    number: Mapped[str] = mapped_column(String(50), index=True)
    e164: Mapped[str | None] = mapped_column(String(20), index=True)
    """``number`` in E.164 form, for duplicate detection and search."""
    position: Mapped[int] = mapped_column(default=0)
