"""Database plumbing: the declarative ``Base``, column types and engine set-up.

Core and every plugin declare their tables on :class:`Base`, so there is one
``MetaData`` (with a naming convention that gives every constraint a stable name,
which Alembic's batch mode on SQLite and PostgreSQL both need).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Engine,
    Integer,
    MetaData,
    Numeric,
    String,
    create_engine,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
from sqlalchemy.types import TypeDecorator

from crm_core import sqlite
from crm_core.config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    Naive datetimes are refused on the way in: a CRM gathers data from many
    time zones, and guessing the zone is how appointments end up an hour off.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: give a time zone")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class JSONDocument(TypeDecorator[Any]):
    """JSON: ``JSONB`` on PostgreSQL (compact, indexable), JSON text on SQLite."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


JSONType = JSONDocument()

#: Money amounts: exact decimals, never floats. Pair with a :data:`Currency` column.
Amount = Numeric(18, 4, asdecimal=True)

#: An ISO 4217 currency code such as ``EUR``.
Currency = String(3)


class Base(DeclarativeBase):
    """The declarative base of every core and plugin model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dt.datetime: UTCDateTime(),
        Decimal: Amount,
        dict[str, Any]: JSONType,
        list[str]: JSONType,
    }


class TimestampMixin:
    """``created_at`` and ``updated_at`` columns, in UTC."""

    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class VersionedMixin:
    """A ``version`` column for optimistic locking.

    Services compare the version a caller edited with the stored one, and the ORM
    adds ``WHERE version = :old`` to every UPDATE, so two concurrent writers can
    never silently overwrite each other.
    """

    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.version}


def create_db_engine(settings: Settings, **kwargs: Any) -> Engine:
    """Create the engine for ``settings.database_url`` with the dialect set-up crm-core needs.

    SQLite gets WAL journaling, enforced foreign keys, a busy timeout and transactions
    begun by SQLAlchemy (:mod:`crm_core.sqlite`); its file's folder is created when missing.
    """
    url = settings.url
    options: dict[str, Any] = {"echo": settings.echo_sql}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"timeout": 30}
    else:
        options["pool_pre_ping"] = True
    options.update(kwargs)
    engine = create_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        sqlite.set_up(engine)
    return engine
