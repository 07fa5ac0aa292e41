"""Staff users and their roles."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Column, ForeignKey, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from crm_core.db import Base, TimestampMixin

user_roles = Table(
    "user_role",
    Base.metadata,
    Column("user_id", ForeignKey("user.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("role.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Visibility(enum.StrEnum):
    """Which records a role lets its users see: their own, their team's, or all."""

    OWN = "own"
    TEAM = "team"
    ALL = "all"


class Role(TimestampMixin, Base):
    """A named set of permissions, e.g. ``sales`` or ``admin``, and a visibility rule."""

    __tablename__ = "role"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    permissions: Mapped[list[str]] = mapped_column(default=list)
    visibility: Mapped[str] = mapped_column(String(10), default=Visibility.ALL.value)


class Team(TimestampMixin, Base):
    """A group of users who share records when their role's visibility is ``team``."""

    __tablename__ = "team"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)

    def __repr__(self) -> str:
        return f"<Team {self.name}>"


class User(TimestampMixin, Base):
    """A member of staff who signs in and owns records."""

    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("team.id", ondelete="SET NULL"), index=True
    )
    last_login_at: Mapped[dt.datetime | None]
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None]
    #: The UI's language for this user (a code of :data:`crm_core.languages.LANGUAGES`);
    #: ``None`` follows the browser's preference.
    language: Mapped[str | None] = mapped_column(String(16))
    roles: Mapped[list[Role]] = relationship(secondary=user_roles, lazy="selectin")
    team: Mapped[Team | None] = relationship(lazy="selectin")

    def set_password(self, password: str) -> None:
        """Store a salted, slow hash (scrypt) of ``password``."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Whether ``password`` matches the stored hash."""
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    @property
    def permissions(self) -> frozenset[str]:
        """Every permission granted by any of the user's roles."""
        return frozenset(p for role in self.roles for p in role.permissions)

    @property
    def visibility(self) -> Visibility:
        """The widest visibility any of the user's roles grants (``own`` without roles)."""
        granted = {role.visibility for role in self.roles}
        for level in (Visibility.ALL, Visibility.TEAM):
            if level.value in granted:
                return level
        return Visibility.OWN

    # Flask-Login's user protocol.
    @property
    def is_active(self) -> bool:
        """Deactivated users cannot sign in or use their tokens."""
        return self.active

    @property
    def is_authenticated(self) -> bool:
        """A loaded user is always authenticated (anonymous visitors have no User)."""
        return True

    @property
    def is_anonymous(self) -> bool:
        """Never: anonymous visitors have no User."""
        return False

    def get_id(self) -> str:
        """The id Flask-Login keeps in the session."""
        return str(self.id)

    def __repr__(self) -> str:
        return f"<User {self.email}>"
