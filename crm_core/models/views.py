"""Saved views: a user's named filters of a list in the UI ("My Berlin leads")."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Base, TimestampMixin


class SavedView(TimestampMixin, Base):
    """One user's named query of one list (``entity``): its filters and sort, as a URL query."""

    __tablename__ = "saved_view"
    __table_args__ = (UniqueConstraint("user_id", "entity", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(80))
    query: Mapped[str] = mapped_column(String(1000), default="")
    """The list's query string without its cursor, e.g. ``stage=lead&owner=me&sort=name``."""
