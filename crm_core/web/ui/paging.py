"""Keyset pages of the UI's lists: a page at a time, without ``OFFSET`` or ``COUNT``.

A list fetches one row more than a page (:func:`split_page`): that row only says that
there is a next page, whose link carries where this page ended. Lists sorted by a
column and then the id carry a :class:`~crm_core.web.api.pagination.Cursor` (an opaque
token, see :class:`Keyset`); lists in id order carry the last id (:func:`id_arg`). A
bad cursor or id in the address is a 400.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import abort, request
from sqlalchemy import Select

from crm_core.ids import as_record_id
from crm_core.web.api.pagination import INT64, Cursor, after, ordered
from crm_core.web.api.problems import ApiProblem

T = TypeVar("T")


@dataclass(frozen=True)
class Keyset:
    """A list's order: by ``column`` (``key`` in its cursors), then by ``id_column``.

    ``python_type`` is the type of ``column``'s values; ``id_bounds`` the ids a cursor
    may carry (see :func:`~crm_core.web.api.pagination.int_bounds`).
    """

    key: str
    column: Any
    id_column: Any
    descending: bool = False
    python_type: type = str
    id_bounds: tuple[int, int] = INT64

    def cursor(self, arg: str = "cursor") -> Cursor | None:
        """The cursor in the query parameter ``arg`` (``None``: the first page); a bad one: 400."""
        token = request.args.get(arg)
        if not token:
            return None
        try:
            return Cursor.decode(
                token, sort=self.key, descending=self.descending,
                python_type=self.python_type, id_bounds=self.id_bounds,
            )
        except ApiProblem:
            abort(400)

    def page(self, statement: Select[Any], cursor: Cursor | None, size: int) -> Select[Any]:
        """``statement`` in this order, after ``cursor``: a page of ``size``, and one row more."""
        if cursor is not None:
            statement = statement.where(after(cursor, self.column, self.id_column))
        return ordered(statement, self.column, self.id_column, self.descending).limit(size + 1)

    def token(self, row: Any) -> str:
        """The cursor of the page that follows ``row``."""
        value = getattr(row, self.column.key)
        return Cursor(self.key, self.descending, value, getattr(row, self.id_column.key)).encode()


def split_page(
    found: Sequence[T], size: int, next_url: Callable[[T], str]
) -> tuple[list[T], str | None]:
    """The page among ``found`` (fetched with one row more) and the link to the next page.

    ``next_url`` makes the link from the page's last row; ``None`` on the last page.
    """
    rows = list(found[:size])
    return rows, (next_url(rows[-1]) if len(found) > size else None)


def id_arg(name: str = "before", *, lowest: int = 0) -> int | None:
    """The query parameter ``name``: the id where the previous page ended; a bad one: 400.

    It must be a record id (:func:`~crm_core.ids.as_record_id`) no smaller than ``lowest``.
    """
    raw = request.args.get(name)
    if raw is None:
        return None
    ident = as_record_id(raw) if raw.isascii() and raw.isdigit() else None
    if ident is None or ident < lowest:
        abort(400)
    return ident
