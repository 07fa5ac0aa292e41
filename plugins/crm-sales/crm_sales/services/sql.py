"""SQL expressions the reports and the funnel store share, written once for both databases.

SQLite keeps timestamps as UTC text and numerics as floating point; PostgreSQL has
``timestamptz`` and exact numerics. These helpers hide the difference: amounts as whole
cents, durations as seconds, a timestamp's UTC day, sums that are 0 for no rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Date, cast, func, literal_column
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

#: A session, a connection, or the name of their database (``sqlite``, ``postgresql``).
Bind = Session | Connection | str


def dialect(bind: Bind) -> str:
    """``sqlite`` or ``postgresql``: the database behind ``bind``."""
    if isinstance(bind, str):
        return bind
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.dialect.name


def cents(column: Any) -> ColumnElement[int]:
    """An amount as whole cents (an integer in both databases)."""
    return cast(func.round(column * 100), BigInteger)


def total(bind: Bind, expression: Any) -> ColumnElement[Any]:
    """The sum of ``expression``: SQLite's ``TOTAL`` (never overflows, exact for whole
    numbers up to 2^53), PostgreSQL's exact ``SUM``; 0 for no rows."""
    if dialect(bind) == "sqlite":
        return func.total(expression)
    return func.coalesce(func.sum(expression), 0)


def seconds(bind: Bind, start: Any, end: Any) -> ColumnElement[Any]:
    """Seconds from ``start`` to ``end`` (``NULL`` when either is)."""
    if dialect(bind) == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return func.extract("epoch", end - start)


def whole_seconds(bind: Bind, start: Any, end: Any) -> ColumnElement[int]:
    """:func:`seconds` rounded to a whole number (what the funnel store keeps per stay)."""
    return cast(func.round(seconds(bind, start, end)), BigInteger)


def utc_day(bind: Bind, column: Any) -> ColumnElement[Any]:
    """The day (UTC) of timestamp ``column``, as a date."""
    if dialect(bind) == "sqlite":
        return func.date(column, type_=Date)
    # Written out, not a parameter: a GROUP BY must repeat the select's expression exactly.
    return cast(func.timezone(literal_column("'UTC'"), column), Date)


def month_start(bind: Bind, column: Any) -> ColumnElement[Any]:
    """The first day of the month of date ``column``, as a date."""
    if dialect(bind) == "sqlite":
        return func.date(column, literal_column("'start of month'"), type_=Date)
    return cast(func.date_trunc(literal_column("'month'"), column), Date)


def unordered(column: Any) -> ColumnElement[Any]:
    """An integer ``column`` as a grouping key no index provides (``column + 0``).

    Grouping by a column an index orders by, SQLite reads the rows in that index's order
    (one random row lookup each, all of them) instead of scanning the rows it needs
    first and sorting what it found; the expression leaves it the cheaper plan.
    PostgreSQL plans the same either way.
    """
    return (column + literal_column("0")).label(None)
