"""The customer 360 timeline: interactions and plugins' entries, newest first, by keyset.

:func:`timeline` reads one page: the customer's interactions (index
``ix_interaction_customer_id_occurred_at``, read backwards from the cursor) merged
with what plugins return from ``crm_timeline_entries`` (deals, tickets, invoices...).
Every source is asked for at most ``limit + 1`` entries after the cursor; the merged
list is cut to ``limit``, and the last entry shown becomes the next cursor. Entries
are ordered by ``(occurred_at, type, id)``, newest first, so a page never repeats or
skips an entry, even when several happened at the same moment.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import literal, select, tuple_
from sqlalchemy.orm import Session

from crm_core.authz import has_permission, require, visible
from crm_core.errors import CRMError, HookError, NotFoundError, ValidationError
from crm_core.extensions import TimelineEntry
from crm_core.i18n import N_
from crm_core.ids import MAX_ID, as_record_id
from crm_core.models import Customer, Interaction
from crm_core.search import active

if TYPE_CHECKING:
    from crm_core.models import User
    from crm_core.runtime import CRM

#: The type of interaction entries.
INTERACTION = "interaction"
#: The largest page.
MAX_LIMIT = 500
#: How much of an interaction's body an entry's summary shows.
SUMMARY_LENGTH = 280


class TimelineCursor(NamedTuple):
    """Where a page ended: the last entry's ``(occurred_at, type, id)``."""

    occurred_at: dt.datetime
    type: str
    id: int | str

    def encode(self) -> str:
        """An opaque, URL-safe token for the API's ``cursor`` parameter."""
        raw = json.dumps([self.occurred_at.isoformat(), self.type, self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> TimelineCursor:
        """Read a token made by :meth:`encode`; :class:`ValidationError` if it is not one."""
        try:
            padded = token + "=" * (-len(token) % 4)
            when, kind, ident = json.loads(base64.urlsafe_b64decode(padded.encode()))
            occurred_at = dt.datetime.fromisoformat(when)
            valid = (
                isinstance(kind, str)
                and isinstance(ident, int | str)
                and not isinstance(ident, bool)
                and occurred_at.tzinfo is not None
                and occurred_at.astimezone(dt.UTC) is not None
                and "\x00" not in kind + str(ident)
            )
        except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error):
            valid = False
        if not valid:
            raise ValidationError({"cursor": [N_("Not a valid cursor.")]})
        return cls(occurred_at, kind, ident)

    @classmethod
    def of(cls, entry: TimelineEntry) -> TimelineCursor:
        """The cursor just after ``entry``."""
        return cls(entry.occurred_at, entry.type, entry.id)


@dataclass(frozen=True)
class TimelinePage:
    """One page of a timeline; ``next_cursor`` is ``None`` on the last page."""

    entries: list[TimelineEntry]
    next_cursor: TimelineCursor | None


def timeline(
    crm: CRM,
    session: Session,
    actor: User | None,
    customer_id: Any,
    *,
    before: TimelineCursor | None = None,
    limit: int = 50,
    channels: Collection[str] | None = None,
    types: Collection[str] | None = None,
) -> TimelinePage:
    """A page of the timeline of customer ``customer_id``, newest first.

    ``before`` is the previous page's ``next_cursor`` (``None``: the first page);
    ``limit`` is 1 to 500. ``types`` keeps entries of those types (``interaction``,
    or what plugins contribute, e.g. ``sales.deal``); ``channels`` keeps entries on
    those channels (interactions' ``call``, ``email``..., and plugin entries that
    name a channel), so ``channels={"call"}`` shows calls only.

    Needs ``customer.view``; a customer ``actor`` may not see is a
    :class:`NotFoundError`. Interactions appear with ``interaction.view``; plugins
    decide for their entries.
    """
    require(actor, "customer.view")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError({"limit": [f"Give a whole number from 1 to {MAX_LIMIT}."]})
    ident = as_record_id(customer_id)
    found = (
        session.scalar(select(Customer.id).where(Customer.id == ident, visible(actor, "customer")))
        if ident is not None
        else None
    )
    if found is None:
        raise NotFoundError("customer", customer_id)
    if before is not None:
        before = _checked_cursor(before)
    wanted_types = frozenset(types) if types is not None else None
    wanted_channels = frozenset(channels) if channels is not None else None
    entries: list[TimelineEntry] = []
    if (wanted_types is None or INTERACTION in wanted_types) and has_permission(
        actor, "interaction.view"
    ):
        entries += _interactions(crm, session, found, before, limit + 1, wanted_channels)
    entries += _plugin_entries(
        crm, session, actor, found, before, limit + 1, wanted_types, wanted_channels
    )
    entries.sort(key=_key, reverse=True)
    page = entries[:limit]
    next_cursor = TimelineCursor.of(page[-1]) if len(entries) > limit else None
    return TimelinePage(page, next_cursor)


def _interactions(
    crm: CRM,
    session: Session,
    customer_id: int,
    before: TimelineCursor | None,
    limit: int,
    channels: frozenset[str] | None,
) -> list[TimelineEntry]:
    statement = select(Interaction).where(
        Interaction.customer_id == customer_id, active(Interaction)
    )
    if channels is not None:
        statement = statement.where(Interaction.channel.in_(sorted(channels)))
    if before is not None:
        # Newest first by (occurred_at, type, id): at the cursor's moment, interactions
        # come after it when their type sorts before the cursor's type.
        if before.type > INTERACTION:
            statement = statement.where(Interaction.occurred_at <= before.occurred_at)
        elif before.type < INTERACTION or not isinstance(before.id, int) or before.id < -MAX_ID:
            statement = statement.where(Interaction.occurred_at < before.occurred_at)
        elif before.id > MAX_ID:
            statement = statement.where(Interaction.occurred_at <= before.occurred_at)
        else:
            statement = statement.where(
                tuple_(Interaction.occurred_at, Interaction.id)
                < tuple_(
                    literal(before.occurred_at, Interaction.occurred_at.type),
                    literal(before.id, Interaction.id.type),
                )
            )
    statement = statement.order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
    channel_labels = {name: channel.label for name, channel in crm.registry.channels.items()}
    return [
        TimelineEntry(
            type=INTERACTION,
            id=row.id,
            occurred_at=row.occurred_at,
            title=row.subject or channel_labels.get(row.channel) or row.channel,
            summary=row.body[:SUMMARY_LENGTH],
            channel=row.channel,
            extra={
                "direction": row.direction,
                "contact_id": row.contact_id,
                "user_id": row.user_id,
                "source": row.source,
            },
        )
        for row in session.scalars(statement.limit(limit))
    ]


def _plugin_entries(
    crm: CRM,
    session: Session,
    actor: User | None,
    customer_id: int,
    before: TimelineCursor | None,
    limit: int,
    types: frozenset[str] | None,
    channels: frozenset[str] | None,
) -> list[TimelineEntry]:
    """Every plugin's entries, checked and filtered (a plugin's slip cannot break a page)."""
    arguments = {
        "session": session,
        "actor": actor,
        "customer_id": customer_id,
        "before": before,
        "limit": limit,
        "types": types,
        "channels": channels,
    }
    hook = "crm_timeline_entries"
    entries = []
    for impl in reversed(crm.pm.hook.crm_timeline_entries.get_hookimpls()):
        try:
            result = impl.function(*(arguments[name] for name in impl.argnames))
            checked = _checked(result or (), impl.plugin_name)
        except CRMError:
            raise
        except Exception as exc:
            raise HookError(hook, impl.plugin_name, exc) from exc
        for entry in checked:
            if types is not None and entry.type not in types:
                continue
            if channels is not None and entry.channel not in channels:
                continue
            if before is not None and not _key(entry) < _cursor_key(before):
                continue
            entries.append(entry)
    return entries


def _checked_cursor(cursor: TimelineCursor) -> TimelineCursor:
    """The cursor in UTC; :class:`ValidationError` for a moment no database can hold."""
    try:
        when = cursor.occurred_at.astimezone(dt.UTC)
        valid = when.tzinfo is not None and cursor.occurred_at.utcoffset() is not None
    except (OverflowError, ValueError, AttributeError):
        valid = False
    if not valid or not isinstance(cursor.type, str) or isinstance(cursor.id, bool):
        raise ValidationError({"cursor": [N_("Not a valid cursor.")]})
    return TimelineCursor(when, cursor.type, cursor.id)


def _checked(result: Sequence[Any], plugin: str) -> list[TimelineEntry]:
    entries = []
    for entry in result:
        if not isinstance(entry, TimelineEntry):
            raise TypeError(f"returned {type(entry).__name__}, not a TimelineEntry")
        if entry.occurred_at.tzinfo is None or entry.occurred_at.utcoffset() is None:
            raise TypeError(f"entry {entry.type} {entry.id!r}: occurred_at has no time zone")
        entries.append(dataclasses.replace(entry, plugin=plugin))
    return entries


def _key(entry: TimelineEntry) -> tuple[dt.datetime, str, tuple[int, Any]]:
    return (entry.occurred_at, entry.type, _id_key(entry.id))


def _cursor_key(cursor: TimelineCursor) -> tuple[dt.datetime, str, tuple[int, Any]]:
    return (cursor.occurred_at, cursor.type, _id_key(cursor.id))


def _id_key(ident: int | str) -> tuple[int, Any]:
    """Ids order among themselves: numbers by value, before strings (never compared mixed)."""
    return (0, ident) if isinstance(ident, int) else (1, str(ident))


__all__ = ["INTERACTION", "MAX_LIMIT", "TimelineCursor", "TimelinePage", "timeline"]
