"""The customer timeline: interactions and plugin entries, newest first, paged by keyset."""

from __future__ import annotations

import datetime as dt
import types
from typing import Any

import pytest

from crm_core import HookError, NotFoundError, PermissionDenied
from crm_core.extensions import TimelineEntry
from crm_core.models import Role, User
from crm_core.services import customers, interactions
from crm_core.testing import plugin_module as plugin
from crm_core.timeline import TimelineCursor, timeline

pytestmark = pytest.mark.plugins()

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


#: Deals the fake sales plugin shows, by customer name: (id, hours after T0, title).
DEALS: dict[str, list[tuple[int, float, str]]] = {}
SEEN: list[dict[str, Any]] = []


def _deal_entries(session, actor, customer_id, before, limit, types, channels):
    """A plugin that does what the hook asks (filters by cursor and types itself)."""
    SEEN.append({"actor": actor, "before": before, "limit": limit, "types": types})
    if types is not None and "sales.deal" not in types:
        return []
    entries = [
        TimelineEntry("sales.deal", ident, at(hours), title, summary="won")
        for ident, hours, title in DEALS.get(str(customer_id), [])
    ]
    if before is not None:
        entries = [e for e in entries if (e.occurred_at, e.type, e.id) < tuple(before)]
    entries.sort(key=lambda e: (e.occurred_at, e.id), reverse=True)
    return entries[:limit]


def _ticket_entries(customer_id):
    """A sloppy plugin: ignores the cursor and the limit; core filters for it."""
    if str(customer_id) not in DEALS:
        return None
    return [
        TimelineEntry("support.ticket", "T-1", at(2), "Printer on fire", channel="ticket"),
        TimelineEntry("support.ticket", "T-2", at(5), "Invoice question", channel="email"),
    ]




@pytest.fixture
def crm_plugin_modules() -> list[types.ModuleType]:
    DEALS.clear()
    SEEN.clear()
    return [
        plugin("sales", crm_timeline_entries=_deal_entries),
        plugin("support", crm_timeline_entries=_ticket_entries),
    ]


@pytest.fixture
def acme(crm) -> Any:
    """A customer with interactions (two at the same moment), deals and tickets."""
    with crm.unit_of_work() as uow:
        acme = customers.create(uow, {"name": "ACME"})
        other = customers.create(uow, {"name": "Other"})
        rows = [
            ("call", 0, "First call"),
            ("email", 1, "Offer"),
            ("meeting", 3, "Kick-off"),
            ("call", 3, "Follow-up"),  # same moment as the meeting
            ("note", 4, ""),
            ("email", 6, "Thanks"),
        ]
        made = interactions.bulk_create(
            uow,
            [
                {"customer_id": acme.id, "channel": c, "occurred_at": at(h), "subject": s}
                for c, h, s in rows
            ]
            + [{"customer_id": other.id, "channel": "call", "occurred_at": at(2)}],
        ).records
        interactions.archive(uow, made[1].id)  # archived: not on the timeline
    DEALS[str(acme.id)] = [(7, 3, "Deal A"), (8, 6, "Deal B")]
    acme.interaction_ids = [record.id for record in made]
    return acme


def test_interactions_and_plugin_entries_newest_first(crm, acme):
    with crm.session_factory() as session:
        page = timeline(crm, session, None, acme.id, limit=50)
    by_time = [(entry.occurred_at - T0, entry.type, entry.title) for entry in page.entries]
    assert by_time == [
        (dt.timedelta(hours=6), "sales.deal", "Deal B"),
        (dt.timedelta(hours=6), "interaction", "Thanks"),
        (dt.timedelta(hours=5), "support.ticket", "Invoice question"),
        (dt.timedelta(hours=4), "interaction", "Note"),  # no subject: the channel's label
        (dt.timedelta(hours=3), "sales.deal", "Deal A"),
        (dt.timedelta(hours=3), "interaction", "Follow-up"),
        (dt.timedelta(hours=3), "interaction", "Kick-off"),
        (dt.timedelta(hours=2), "support.ticket", "Printer on fire"),
        (dt.timedelta(hours=0), "interaction", "First call"),
    ]
    assert page.next_cursor is None
    first = page.entries[1]
    assert (first.plugin, first.channel, first.extra["source"]) == ("crm_core", "email", "crm")
    assert {entry.plugin for entry in page.entries if entry.type != "interaction"} == {
        "sales",
        "support",
    }
    assert SEEN[0] == {"actor": None, "before": None, "limit": 51, "types": None}


def test_pages_neither_repeat_nor_skip_entries(crm, acme):
    with crm.session_factory() as session:
        everything = timeline(crm, session, None, acme.id, limit=50).entries
        for size in (1, 2, 3, 4):
            seen: list[TimelineEntry] = []
            cursor = None
            while True:
                page = timeline(crm, session, None, acme.id, before=cursor, limit=size)
                assert len(page.entries) <= size
                seen += page.entries
                if page.next_cursor is None:
                    break
                # Through the API the cursor travels as an opaque token.
                cursor = TimelineCursor.decode(page.next_cursor.encode())
            assert [(e.type, e.id) for e in seen] == [(e.type, e.id) for e in everything], size


def test_filters_by_type_and_channel(crm, acme):
    with crm.session_factory() as session:

        def titles(**filters: Any) -> list[str]:
            return [e.title for e in timeline(crm, session, None, acme.id, **filters).entries]

        assert titles(types={"interaction"}) == [
            "Thanks",
            "Note",
            "Follow-up",
            "Kick-off",
            "First call",
        ]
        assert titles(types={"sales.deal", "support.ticket"}) == [
            "Deal B",
            "Invoice question",
            "Deal A",
            "Printer on fire",
        ]
        # Channels keep interactions on them and plugin entries that name one of them.
        assert titles(channels={"email"}) == ["Thanks", "Invoice question"]
        assert titles(channels={"call", "ticket"}) == ["Follow-up", "Printer on fire", "First call"]
        assert titles(types={"sales.deal"}, channels={"call"}) == []


def test_visibility_and_permissions(crm, acme):
    with crm.unit_of_work() as uow:
        own = Role(name="own", permissions=["customer.view"], visibility="own")
        everything = Role(name="all", permissions=["customer.view"], visibility="all")
        ann = User(email="ann@x.example", roles=[own])
        dee = User(email="dee@x.example", roles=[everything])
        nobody = User(email="no@x.example", roles=[])
        uow.session.add_all([ann, dee, nobody])
    with crm.session_factory() as session:
        with pytest.raises(NotFoundError):
            timeline(crm, session, ann, acme.id)  # not ann's customer
        with pytest.raises(NotFoundError):
            timeline(crm, session, None, 987654)
        with pytest.raises(NotFoundError):
            timeline(crm, session, None, "not-an-id")
        with pytest.raises(PermissionDenied):
            timeline(crm, session, nobody, acme.id)
        # Without interaction.view, only what plugins show.
        entries = timeline(crm, session, dee, acme.id).entries
        assert {entry.type for entry in entries} == {"sales.deal", "support.ticket"}
        assert SEEN[-1]["actor"] is dee


def test_bad_cursors_limits_and_plugin_entries(crm, acme):
    from crm_core import ValidationError

    with pytest.raises(ValidationError):
        TimelineCursor.decode("garbage!")
    for token in ("W10", "WyIyMDI2LTAxLTAxIiwiYSIsMV0"):  # [], a naive time
        with pytest.raises(ValidationError):
            TimelineCursor.decode(token)
    far = dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-14)))
    with pytest.raises(ValidationError), crm.session_factory() as session:
        timeline(crm, session, None, acme.id, before=TimelineCursor(far, "interaction", 1))
    with crm.session_factory() as session:
        for huge in (2**31, 2**63, -(2**40)):  # more than an id column holds: no error
            later = TimelineCursor(at(3), "interaction", huge)
            assert timeline(crm, session, None, acme.id, before=later).entries
            with pytest.raises(NotFoundError):
                timeline(crm, session, None, huge)
    cursor = TimelineCursor(at(3), "interaction", acme.interaction_ids[3])
    assert TimelineCursor.decode(cursor.encode()) == cursor
    with crm.session_factory() as session:
        for bad in (0, 501, True):
            with pytest.raises(ValidationError):
                timeline(crm, session, None, acme.id, limit=bad)
        after = timeline(crm, session, None, acme.id, before=cursor).entries
        assert [e.title for e in after] == ["Kick-off", "Printer on fire", "First call"]


def _naive(customer_id):
    return [TimelineEntry("sales.deal", 9, dt.datetime(2026, 1, 1), "Naive")]


def _wrong_type():
    return [{"type": "deal"}]


def _failing():
    raise RuntimeError("database of deals is down")


class TestBrokenPlugins:
    """A plugin's exception or bad entry is a HookError naming it."""

    @pytest.fixture(params=["naive", "wrong", "failing"])
    def crm_plugin_modules(self, request) -> list[types.ModuleType]:
        hooks = {"naive": _naive, "wrong": _wrong_type, "failing": _failing}
        return [plugin(request.param, crm_timeline_entries=hooks[request.param])]

    def test_the_plugin_is_named(self, crm, crm_plugin_modules):
        with crm.unit_of_work() as uow:
            acme = customers.create(uow, {"name": "ACME"})
        with pytest.raises(HookError) as caught, crm.session_factory() as session:
            timeline(crm, session, None, acme.id)
        assert caught.value.plugin == crm_plugin_modules[0].PLUGIN_NAME
