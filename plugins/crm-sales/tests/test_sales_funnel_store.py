"""The funnel's day sums: every change of a deal through the services keeps them equal to
what the deals add up to, a rolled-back change leaves them alone, and the report reads
the same figures from them as from the deals, whatever the time zone."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from crm_sales.models import (
    FunnelOutcomeDay,
    FunnelStageDay,
    Opportunity,
    Pipeline,
    Product,
    Stage,
)
from crm_sales.services import activities, funnel, funnel_store, opportunities, pipelines
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_core.models import AuditEntry
from crm_core.services import customers, merges
from crm_core.testing import make_user

EDITOR = ["sales.deal.view", "sales.deal.edit", "sales.deal.archive", "sales.report.view",
          "sales.admin", "sales.activity.view", "sales.activity.edit", "customer.view",
          "customer.edit"]


def _stored(session: Session) -> dict[Any, tuple[int, ...]]:
    """Every row of both tables with a figure other than zero."""
    found: dict[Any, tuple[int, ...]] = {}
    for model, key, sums in (
        (FunnelStageDay, funnel_store._STAGE_KEY, funnel_store._STAGE_SUMS),
        (FunnelOutcomeDay, funnel_store._OUTCOME_KEY, funnel_store._OUTCOME_SUMS),
    ):
        for row in session.execute(select(*(getattr(model, n) for n in (*key, *sums)))):
            values = tuple(row)
            figures = tuple(int(v) for v in values[len(key):])
            if any(figures):
                found[(model.__tablename__, *values[: len(key)])] = figures
    return found


def _rebuilt(session: Session) -> dict[Any, tuple[int, ...]]:
    """What :func:`funnel_store.rebuild` makes of the deals (undone afterwards)."""
    savepoint = session.begin_nested()
    funnel_store.rebuild(session)
    found = _stored(session)
    savepoint.rollback()
    return found


def _stages(session: Session, pipeline: str | None = None) -> dict[str, int]:
    query = select(Stage.name, Stage.id).join(Pipeline)
    query = query.where(Pipeline.name == pipeline) if pipeline else query.where(
        Pipeline.is_default.is_(True))
    return dict(session.execute(query).all())


@pytest.fixture
def editor(crm: Any) -> Any:
    return make_user(crm, "editor@sales.example", EDITOR)


def test_every_change_through_the_services_keeps_the_sums(
    crm: Any, editor: Any, seller: Any, acme: Any
) -> None:
    with crm.unit_of_work(actor=editor, source="test") as uow:
        s = uow.session
        stages = _stages(s)
        widget = Product(code="W", name="Widget", unit_price=Decimal("10"))
        gadget = Product(code="G", name="Gadget", unit_price=Decimal("20"))
        s.add_all([widget, gadget])
        s.flush()
        line = {"product_id": widget.id, "description": "", "quantity": "2",
                "unit_price": "10", "discount_percent": "0"}
        first = opportunities.create(uow, {"name": "One", "customer_id": acme.id,
                                           "amount": "100.00", "lines": [line]})
        second = opportunities.create(uow, {"name": "Two", "customer_id": acme.id,
                                            "amount": "250.50", "currency": "USD"})
        steps = [
            lambda: opportunities.move(uow, first.id, {"stage_id": stages["Needs analysis"]}),
            lambda: opportunities.move(uow, first.id, {"stage_id": stages["Proposal"]}),
            lambda: opportunities.move(uow, first.id, {"stage_id": stages["Needs analysis"]}),
            lambda: opportunities.move(uow, first.id, {"stage_id": stages["Won"]}),
            lambda: opportunities.update(uow, first.id, {"owner_id": seller.id}),
            lambda: opportunities.update(uow, first.id, {"amount": "120.00", "lines": [
                line, {**line, "product_id": gadget.id}]}),
            lambda: opportunities.update(uow, second.id, {"stage_id": stages["Lost"]}),
            lambda: opportunities.archive(uow, second.id),
            lambda: opportunities.restore(uow, second.id),
        ]
        assert _stored(s) == _rebuilt(s) != {}
        for step in steps:
            step()
            assert _stored(s) == _rebuilt(s)
        renewals = pipelines.create(uow, {"name": "Renewals", "stages": [
            {"name": "Open", "probability": 50, "outcome": "open"},
            {"name": "Renewed", "probability": 100, "outcome": "won"},
            {"name": "Gone", "probability": 0, "outcome": "lost"},
        ]})
        opportunities.update(uow, first.id, {"pipeline_id": renewals.id})
        assert _stored(s) == _rebuilt(s)
        moved = [key for key in _stored(s) if key[1] == renewals.id]
        assert moved, "the moved deal counts in its new pipeline"


def test_a_rolled_back_change_leaves_the_sums(crm: Any, editor: Any, acme: Any) -> None:
    with crm.unit_of_work(actor=editor, source="test") as uow:
        deal = opportunities.create(uow, {"name": "Kept", "customer_id": acme.id,
                                          "amount": "10.00"})
        stages = _stages(uow.session)
    with crm.session_factory() as session:
        before = _stored(session)
    with pytest.raises(RuntimeError), crm.unit_of_work(actor=editor, source="test") as uow:
        opportunities.move(uow, deal.id, {"stage_id": stages["Won"]})
        raise RuntimeError("a hook after it failed")
    with crm.session_factory() as session:
        assert _stored(session) == before


def test_rebuild_puts_right_what_was_changed_behind_the_services(
    crm: Any, runner: Any, editor: Any, seller: Any, acme: Any
) -> None:
    with crm.unit_of_work(actor=editor, source="test") as uow:
        opportunities.create(uow, {"name": "A", "customer_id": acme.id, "amount": "5.00"})
    with crm.unit_of_work(source="test") as uow:
        uow.session.execute(update(Opportunity).values(owner_id=seller.id))
        assert _stored(uow.session) != _rebuilt(uow.session)
    result = runner.invoke(args=["sales", "rebuild-funnel"])
    assert result.exit_code == 0, result.output
    assert "stage rows" in result.output
    with crm.session_factory() as session:
        assert _stored(session) == _rebuilt(session)
        owner = 1 + funnel_store._STAGE_KEY.index("owner_key")  # after the table's name
        assert {key[owner] for key in _stored(session)} == {seller.id}


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/St_Johns", "Asia/Kolkata"])
def test_days_of_another_time_zone_read_the_same_from_sums_and_deals(
    crm: Any, editor: Any, acme: Any, zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deals created around midnight UTC: the report's days begin at another hour, so
    the edges of the range are read from the deals, the whole UTC days from the sums."""
    monkeypatch.setattr(funnel, "zone_of", lambda _uow: ZoneInfo(zone))
    moments = [dt.datetime(2026, 3, day, hour, minute, tzinfo=dt.UTC)
               for day in (1, 2, 3, 30, 31) for hour, minute in ((0, 10), (4, 0), (23, 50))]
    with crm.unit_of_work(actor=editor, source="test") as uow:
        stages = _stages(uow.session)
        for number, created in enumerate(moments):
            deal = opportunities.create(uow, {"name": f"D{number}", "customer_id": acme.id,
                                              "amount": f"{number + 1}.00"})
            if number % 3:
                opportunities.move(uow, deal.id, {"stage_id": stages["Won"]})
            uow.session.execute(update(Opportunity).where(Opportunity.id == deal.id)
                                .values(created_at=created))
        funnel_store.rebuild(uow.session)
    local = ZoneInfo(zone)
    start, end = dt.date(2026, 3, 2), dt.date(2026, 3, 30)
    expected = sum(1 for moment in moments if start <= moment.astimezone(local).date() <= end)
    with crm.unit_of_work(actor=editor, source="test", write=False) as uow:
        for by in (None, "owner", "product"):
            found = funnel.funnel(uow, start=start, end=end, by=by)
            assert found == funnel.funnel(uow, start=start, end=end, by=by, stored=False)
            assert found.overall.deals == expected
            assert found.overall.won == sum(
                1 for number, moment in enumerate(moments)
                if number % 3 and start <= moment.astimezone(local).date() <= end)


def test_whole_days_and_their_edges() -> None:
    utc = dt.UTC
    days, edges = funnel.whole_days(dt.datetime(2026, 3, 1, tzinfo=utc),
                                    dt.datetime(2026, 3, 3, tzinfo=utc))
    assert days == (dt.date(2026, 3, 1), dt.date(2026, 3, 2)) and edges == []
    days, edges = funnel.whole_days(dt.datetime(2026, 2, 28, 23, tzinfo=utc),
                                    dt.datetime(2026, 3, 2, 23, tzinfo=utc))
    assert days == (dt.date(2026, 3, 1), dt.date(2026, 3, 1))
    assert edges == [
        (dt.datetime(2026, 2, 28, 23, tzinfo=utc), dt.datetime(2026, 3, 1, tzinfo=utc)),
        (dt.datetime(2026, 3, 2, tzinfo=utc), dt.datetime(2026, 3, 2, 23, tzinfo=utc)),
    ]
    days, edges = funnel.whole_days(dt.datetime(2026, 3, 1, 5, tzinfo=utc),
                                    dt.datetime(2026, 3, 2, 5, tzinfo=utc))
    assert days is None and len(edges) == 1


def test_a_customers_new_industry_or_country_moves_its_deals_in_the_breakdowns(
    crm: Any, editor: Any, acme: Any
) -> None:
    with crm.unit_of_work(actor=editor, source="test") as uow:
        opportunities.create(uow, {"name": "A", "customer_id": acme.id, "amount": "5.00"})
        customers.update(uow, acme.id, {"industry": "Bakeries", "country": "SE"})
        assert _stored(uow.session) == _rebuilt(uow.session)
        today = dt.datetime.now(dt.UTC).date()
        for by, key in (("segment", "Bakeries"), ("region", "SE")):
            found = funnel.funnel(uow, start=today, end=today, by=by)
            assert found == funnel.funnel(uow, start=today, end=today, by=by, stored=False)
            assert [row.key for row in found.breakdown] == [key]


def test_merging_customers_moves_their_deals_and_activities_and_undoing_moves_them_back(
    crm: Any, editor: Any, acme: Any
) -> None:
    mergers = make_user(crm, "merger@sales.example", [*EDITOR, "customer.merge"])
    with crm.unit_of_work(actor=mergers, source="test") as uow:
        dupe = customers.create(uow, {"name": "ACME (old)", "industry": "Tools",
                                      "country": "AT", "owner_id": mergers.id})
        deal = opportunities.create(uow, {"name": "Old deal", "customer_id": dupe.id})
        task = activities.create(uow, {"kind": "todo", "subject": "Call back",
                                       "customer_id": dupe.id, "due_at": "2027-01-04T09:00:00Z"})
        survivor = customers.merge(uow, acme.id, [dupe.id], field_sources={"industry": dupe.id})
        assert (deal.customer_id, task.customer_id) == (acme.id, acme.id)
        assert _stored(uow.session) == _rebuilt(uow.session)
        entry = uow.session.scalars(
            select(AuditEntry).where(AuditEntry.entity == "customer",
                                     AuditEntry.action == "merged")).one()
        assert entry.changes["moved"][1]["crm_sales.opportunity"] == {str(dupe.id): [deal.id]}
        assert survivor.industry == "Tools"
        merges.undo_merge(uow, "customer", entry.id)
        uow.session.refresh(deal)
        uow.session.refresh(task)
        assert (deal.customer_id, task.customer_id) == (dupe.id, dupe.id)
        assert _stored(uow.session) == _rebuilt(uow.session)


def test_months_and_days_cover_a_range_with_as_few_rows_as_they_can() -> None:
    day = dt.date.fromisoformat
    assert funnel.months_and_days(day("2026-01-01"), day("2026-12-31")) == [
        ("month", day("2026-01-01"), day("2026-12-01"))]
    assert funnel.months_and_days(day("2026-01-15"), day("2026-03-10")) == [
        ("month", day("2026-02-01"), day("2026-02-01")),
        ("day", day("2026-01-15"), day("2026-01-31")),
        ("day", day("2026-03-01"), day("2026-03-10"))]
    assert funnel.months_and_days(day("2026-01-15"), day("2026-02-10")) == [
        ("day", day("2026-01-15"), day("2026-02-10"))]
    assert funnel.months_and_days(day("2026-02-01"), day("2026-02-27")) == [
        ("day", day("2026-02-01"), day("2026-02-27"))]
