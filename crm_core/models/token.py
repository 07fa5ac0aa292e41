"""API tokens: long random secrets, stored only as a hash, with scopes and expiry."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_core.db import Base, utcnow
from crm_core.models.user import User


class ApiToken(Base):
    """A bearer token of a user; ``scopes`` narrows the user's permissions (empty: all)."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    scopes: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]
    user: Mapped[User] = relationship(lazy="joined")

    def usable(self, now: dt.datetime) -> bool:
        """Whether the token may authenticate a request at ``now``."""
        if self.revoked_at is not None or not self.user.active:
            return False
        return self.expires_at is None or now < self.expires_at
