"""Record ids: which values can name a row of an ``INTEGER`` primary key."""

from __future__ import annotations

from typing import Any

#: Record ids are 32-bit integers (``INTEGER`` on PostgreSQL); anything else names no row.
MAX_ID = 2**31 - 1


def as_record_id(value: Any) -> int | None:
    """``value`` as a primary key (a whole number a key column holds), else ``None``.

    Accepts an ``int`` or a string of digits; booleans, other types and numbers out
    of the 32-bit range give ``None``, so callers answer "not found" instead of
    letting the database fail on them.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and -MAX_ID <= value <= MAX_ID:
        return value
    return None
