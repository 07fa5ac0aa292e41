"""Values in exports: as CSV cells and JSON values, converted in SQL where it is hot.

Core's entity exports turn timestamps, booleans and JSON into CSV text inside the
database (:func:`csv_text`), so their rows reach ``csv.writer`` as plain tuples with
no Python work per value. Plugins' exports and JSON Lines convert in Python
(:func:`csv_cell`, :func:`json_default`): fewer rows, or a shape that needs objects.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import json
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    DateTime,
    Integer,
    String,
    Text,
    case,
    cast,
    func,
    literal,
    null,
    type_coerce,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from crm_core.db import UTCDateTime

#: PostgreSQL's pattern for an ISO 8601 timestamp in UTC, as SQLite's text becomes one.
_PG_UTC_ISO = 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'
_PG_NAIVE_ISO = 'YYYY-MM-DD"T"HH24:MI:SS.US'


def base_type(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    """The type a :class:`TypeDecorator` stores as (``UTCDateTime`` -> ``DateTime``)."""
    while isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    return type_


def csv_text(column: Any, dialect: str) -> ColumnElement[Any]:
    """``column`` as its CSV cell, computed by the database: text, an integer or NULL.

    Timestamps become ISO 8601 with microseconds (and ``+00:00`` for
    :class:`~crm_core.db.UTCDateTime`, stored in UTC), booleans ``true``/``false``,
    JSON its text; integers and strings stay as they are. The expression's type has no
    result processing, so rows can be read straight from the driver's cursor.
    """
    type_ = column.type
    stored = base_type(type_)
    if isinstance(stored, DateTime):
        aware = isinstance(type_, UTCDateTime) or bool(stored.timezone)
        if dialect == "postgresql":
            moment = func.timezone("UTC", column) if aware else column
            return type_coerce(func.to_char(moment, _PG_UTC_ISO if aware else _PG_NAIVE_ISO),
                               String())
        text = func.replace(type_coerce(column, String()), " ", "T")
        return type_coerce(text + "+00:00" if aware else text, String())
    if isinstance(stored, Boolean):
        return type_coerce(
            case((column.is_(True), literal("true")), (column.is_(False), literal("false")),
                 else_=null()),
            String(),
        )
    if isinstance(stored, JSON):
        return cast(column, Text()) if dialect == "postgresql" else type_coerce(column, Text())
    if isinstance(stored, Integer):
        return type_coerce(column, Integer())
    return type_coerce(column, String())


def csv_attribute(column: Any, name: str) -> ColumnElement[Any]:
    """The value of key ``name`` of a JSON ``column``, as text (NULL when absent)."""
    return type_coerce(column[name].as_string(), String())


def csv_cell(value: Any) -> Any:
    """A Python value as a CSV cell: ``true``/``false``, ISO timestamps, JSON text..."""
    if value is None or (isinstance(value, str | int | float) and not isinstance(value, bool)):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=json_default)
    return json_default(value)


def json_default(value: Any) -> Any:
    """What ``json.dumps`` writes for values JSON has no type for (its ``default=``)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID | dt.timedelta):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot export a value of type {type(value).__name__}")


def dumps(record: Any) -> str:
    """One JSON Lines record (no newline): UTF-8 text as it is, no spaces to spare."""
    return json.dumps(record, ensure_ascii=False, default=json_default, separators=(",", ":"))
