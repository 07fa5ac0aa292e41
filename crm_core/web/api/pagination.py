"""Keyset (cursor) pagination: stable, index-friendly pages without OFFSET or COUNT."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_

from crm_core.web.api.problems import ApiProblem

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended: the sort key, its direction, and the last row's values."""

    sort: str
    descending: bool
    value: Any
    id: int

    def encode(self) -> str:
        """An opaque, URL-safe token for the ``cursor`` parameter."""
        value = self.value.isoformat() if isinstance(self.value, dt.datetime) else self.value
        raw = json.dumps([self.sort, self.descending, value, self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, *, sort: str, descending: bool, python_type: type) -> Cursor:
        """Read a ``cursor`` parameter made for the same sort; a bad one is a 400 problem."""
        try:
            padded = token + "=" * (-len(token) % 4)
            key, desc, value, ident = json.loads(base64.urlsafe_b64decode(padded))
            if python_type is dt.datetime and value is not None:
                value = dt.datetime.fromisoformat(value)
            elif value is not None and not isinstance(value, python_type):
                value = python_type(value)
            ident = int(ident)
        except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
            raise ApiProblem(400, "Bad cursor", "The cursor is not one this API made.",
                             errors={"cursor": ["Not a valid cursor."]}) from exc
        if key != sort or bool(desc) != descending:
            raise ApiProblem(400, "Bad cursor", "The cursor belongs to another sort order.",
                             errors={"cursor": ["Made for another sort order."]})
        return cls(key, descending, value, ident)


def parse_limit(raw: str | None) -> int:
    """The ``limit`` parameter: 1 to 500, default 50."""
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiProblem(400, "Bad limit", f"limit must be a whole number from 1 to {MAX_LIMIT}.",
                         errors={"limit": [f"Must be from 1 to {MAX_LIMIT}."]})
    return limit


def after(cursor: Cursor, column: Any, id_column: Any) -> ColumnElement[bool]:
    """Rows after ``cursor`` in (column, id) order: one range on a composite index."""
    if cursor.descending:
        return or_(column < cursor.value, and_(column == cursor.value, id_column < cursor.id))
    return or_(column > cursor.value, and_(column == cursor.value, id_column > cursor.id))


def ordered(statement: Select[Any], column: Any, id_column: Any, descending: bool) -> Select[Any]:
    """``statement`` ordered by (column, id), ascending or descending."""
    if descending:
        return statement.order_by(column.desc(), id_column.desc())
    return statement.order_by(column.asc(), id_column.asc())
