"""Forecasts, quotas and the funnel: hand-made deals and stage stays whose right figures are
worked out by hand below, through the services, the pages and the API."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from crm_sales.models import (
    Opportunity,
    OpportunityLine,
    Pipeline,
    Product,
    Quota,
    Stage,
    StageStay,
)
from crm_sales.services import funnel, funnel_store, quotas, reports
from sqlalchemy import select, update

from crm_core import PermissionDenied, ValidationError
from crm_core.models import AuditEntry, Team, User
from crm_core.services import customers
from crm_core.testing import (
    ApiClient,
    UiBrowser,
    api_token,
    link_of,
    make_user,
    sql_statements,
    ui_user,
)

REPORTS = ["sales.report.view"]
D = Decimal


def _at(text: str) -> dt.datetime:
    """A moment in UTC: ``_at("2026-01-18 10:00")``."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _days(number: float) -> float:
    return number * 86400


@dataclass
class World:
    """The people, teams, customers and stages the deals below belong to."""

    anna: Any
    bob: Any
    carl: Any
    dora: Any
    north: int
    south: int
    acme: Any
    nordic: Any
    stages: dict[str, Stage]


@pytest.fixture
def world(crm: Any, seller: Any) -> World:
    """Anna and Bob in team North, Carl in South, Dora in no team; two customers."""
    with crm.unit_of_work(source="test") as uow:
        north, south = Team(name="North"), Team(name="South")
        uow.session.add_all([north, south])
        uow.session.flush()
        team_ids = north.id, south.id
        stages = {s.name: s for s in uow.session.scalars(
            select(Stage).join(Pipeline).where(Pipeline.is_default.is_(True)))}
    anna = make_user(crm, "anna@sales.example", REPORTS)
    bob = make_user(crm, "bob@sales.example", REPORTS, visibility="own")
    carl = make_user(crm, "carl@sales.example", REPORTS)
    dora = make_user(crm, "dora@sales.example", REPORTS)
    _set_team(crm, anna, team_ids[0])
    _set_team(crm, bob, team_ids[0])
    _set_team(crm, carl, team_ids[1])
    with crm.unit_of_work(actor=seller, source="test") as uow:
        acme = customers.create(uow, {"name": "ACME Tools GmbH", "industry": "Manufacturing",
                                      "country": "DE", "owner_id": seller.id})
        nordic = customers.create(uow, {"name": "Nordic Retail AB", "industry": "Retail",
                                        "country": "SE", "owner_id": seller.id})
    return World(anna, bob, carl, dora, team_ids[0], team_ids[1], acme, nordic, stages)


def _set_team(crm: Any, user: Any, team_id: int) -> None:
    with crm.unit_of_work(source="test") as uow:
        uow.session.execute(update(User).where(User.id == user.id).values(team_id=team_id))
    user.team_id = team_id


def _deal(
    session: Any,
    world: World,
    stage: str,
    owner: Any,
    amount: str,
    *,
    currency: str = "EUR",
    close: str | None = None,
    probability: int | None = None,
    committed: bool = False,
    closed: str | None = None,
    created: str | None = None,
    customer: Any = None,
    archived: bool = False,
) -> Opportunity:
    """A deal written as it is, to know its figures (dates in UTC)."""
    found = world.stages[stage]
    deal = Opportunity(
        name=f"{stage} {amount} {currency}", customer_id=(customer or world.acme).id,
        pipeline_id=found.pipeline_id, stage_id=found.id, status=found.outcome,
        owner_id=owner.id if owner is not None else None, amount=D(amount), currency=currency,
        expected_close=_day(close) if close else None, probability=probability,
        committed=committed, closed_at=_at(closed) if closed else None, archived=archived,
    )
    if created:
        deal.created_at = _at(created)
    session.add(deal)
    session.flush()
    return deal


# -- the forecast ------------------------------------------------------------------------------


@pytest.fixture
def forecast_deals(crm: Any, seller: Any, world: World) -> World:
    """Deals of the first quarter of 2026 (and some that must not count), and quotas."""
    w = world
    with crm.unit_of_work(source="test") as uow:
        s = uow.session
        # January, Anna: 1000 at Proposal (50 %), committed; 2000 at Qualification with an
        # override of 80 %; 500 USD at Negotiation (75 %); won 4000 on 20 January.
        _deal(s, w, "Proposal", w.anna, "1000.00", close="2026-01-15", committed=True)
        _deal(s, w, "Qualification", w.anna, "2000.00", close="2026-01-31", probability=80)
        _deal(s, w, "Negotiation", w.anna, "500.00", currency="USD", close="2026-01-10")
        _deal(s, w, "Won", w.anna, "4000.00", close="2025-12-01", closed="2026-01-20 10:00")
        # February, Bob: 300 at Needs analysis (25 %), committed; 1234.56 with 33 %.
        _deal(s, w, "Needs analysis", w.bob, "300.00", close="2026-02-01", committed=True)
        _deal(s, w, "Proposal", w.bob, "1234.56", close="2026-02-28", probability=33)
        # March: Carl won 1500 an hour before April; a deal without owner, 100 at 50 %;
        # Dora (no team) 400 at Negotiation (75 %).
        _deal(s, w, "Won", w.carl, "1500.00", closed="2026-03-31 23:00")
        _deal(s, w, "Proposal", None, "100.00", close="2026-03-03")
        _deal(s, w, "Negotiation", w.dora, "400.00", close="2026-03-20")
        # Not counted: won on 1 April, won on New Year's Eve, expected in April, lost,
        # archived, no expected close date.
        _deal(s, w, "Won", w.carl, "999.00", closed="2026-04-01 00:00")
        _deal(s, w, "Won", w.anna, "777.00", closed="2025-12-31 23:59")
        _deal(s, w, "Proposal", w.anna, "700.00", close="2026-04-01")
        _deal(s, w, "Lost", w.anna, "800.00", close="2026-01-05", closed="2026-01-06 09:00")
        _deal(s, w, "Proposal", w.anna, "10000.00", close="2026-01-05", archived=True)
        _deal(s, w, "Proposal", w.anna, "50.00")
    with crm.unit_of_work(actor=seller, source="test") as uow:
        for data in (
            {"owner_id": w.anna.id, "starts_on": "2026-01-01", "amount": "8000"},
            {"owner_id": w.carl.id, "starts_on": "2026-03-01", "amount": "3000"},
            {"owner_id": w.bob.id, "starts_on": "2026-02-01", "amount": "1000", "currency": "USD"},
            {"team_id": w.north, "starts_on": "2026-01-01", "amount": "10000"},
            {"owner_id": w.anna.id, "period": "quarter", "starts_on": "2026-01-01",
             "amount": "20000"},
        ):
            quotas.set_quota(uow, data)
    return w


def _rows(result: reports.Forecast) -> dict[tuple[str, str | None, str], reports.Figures]:
    return {(row.period.starts_on.isoformat()[:7], row.group_name, row.currency): row.figures
            for row in result.rows}


def _forecast(crm: Any, user: Any, **kwargs: Any) -> reports.Forecast:
    with crm.unit_of_work(actor=user, source="test", write=False) as uow:
        return reports.forecast(uow, **kwargs)


Q1 = {"start": _day("2026-01-01"), "end": _day("2026-03-31")}


def test_forecast_by_owner_weights_by_override_or_stage_and_compares_with_quotas(
    crm: Any, seller: Any, forecast_deals: World
) -> None:
    result = _forecast(crm, seller, kind="month", by="owner", **Q1)
    assert [p.starts_on for p in result.periods] == [
        _day("2026-01-01"), _day("2026-02-01"), _day("2026-03-01")]
    rows = _rows(result)
    anna = rows[("2026-01", "anna", "EUR")]
    # 1000 + 2000; 1000 x 50 % + 2000 x 80 %; committed 1000; won 4000 against 8000.
    assert (anna.pipeline, anna.weighted, anna.committed, anna.won) == (
        D("3000.00"), D("2100.00"), D("1000.00"), D("4000.00"))
    assert (anna.quota, anna.attainment, anna.open_deals, anna.won_deals) == (
        D("8000.00"), D("0.5000"), 2, 1)
    # Currencies stay apart: 500 USD x 75 %.
    usd = rows[("2026-01", "anna", "USD")]
    assert (usd.pipeline, usd.weighted, usd.quota, usd.attainment) == (
        D("500.00"), D("375.00"), None, None)
    # 300 x 25 % + 1234.56 x 33 % = 75 + 407.4048.
    bob = rows[("2026-02", "bob", "EUR")]
    assert (bob.pipeline, bob.weighted, bob.committed, bob.won) == (
        D("1534.56"), D("482.40"), D("300.00"), D("0.00"))
    # Bob's quota is in USD: nothing won in USD, attainment 0, and no EUR quota.
    assert rows[("2026-02", "bob", "USD")] == reports.Figures(quota=D("1000.00"))
    assert rows[("2026-02", "bob", "USD")].attainment == D("0")
    assert bob.quota is None
    carl = rows[("2026-03", "carl", "EUR")]
    assert (carl.won, carl.won_deals, carl.quota, carl.attainment) == (
        D("1500.00"), 1, D("3000.00"), D("0.5000"))
    assert rows[("2026-03", None, "EUR")].weighted == D("50.00")  # the deal without owner
    assert rows[("2026-03", "dora", "EUR")].weighted == D("300.00")
    assert set(rows) == {
        ("2026-01", "anna", "EUR"), ("2026-01", "anna", "USD"), ("2026-02", "bob", "EUR"),
        ("2026-02", "bob", "USD"), ("2026-03", "carl", "EUR"), ("2026-03", "dora", "EUR"),
        ("2026-03", None, "EUR"),
    }
    # Rows come by period, then by name (the deals without owner last).
    assert [(row.period.starts_on.month, row.group_name) for row in result.rows][-3:] == [
        (3, "carl"), (3, "dora"), (3, None)]


def test_forecast_by_team_and_in_total(crm: Any, seller: Any, forecast_deals: World) -> None:
    rows = _rows(_forecast(crm, seller, kind="month", by="team", **Q1))
    north = rows[("2026-01", "North", "EUR")]
    assert (north.pipeline, north.weighted, north.won, north.quota, north.attainment) == (
        D("3000.00"), D("2100.00"), D("4000.00"), D("10000.00"), D("0.4000"))
    assert rows[("2026-02", "North", "EUR")].weighted == D("482.40")
    assert rows[("2026-03", "South", "EUR")] == reports.Figures(won=D("1500.00"), won_deals=1)
    # No team: the deal without owner (100 x 50 %) and Dora's (400 x 75 %).
    nobody = rows[("2026-03", None, "EUR")]
    assert (nobody.pipeline, nobody.weighted, nobody.open_deals) == (D("500.00"), D("350.00"), 2)
    assert ("2026-02", "North", "USD") not in rows  # team view: team quotas only

    total = _forecast(crm, seller, kind="month", by="total", **Q1)
    rows = _rows(total)
    assert rows[("2026-01", None, "EUR")].quota == D("8000.00")  # users' quotas, not teams'
    march = rows[("2026-03", None, "EUR")]
    assert (march.pipeline, march.weighted, march.won, march.attainment) == (
        D("500.00"), D("350.00"), D("1500.00"), D("0.5000"))
    assert [f.weighted for f in total.totals("EUR")] == [D("2100.00"), D("482.40"), D("350.00")]
    assert total.currencies() == ["EUR", "USD"]


def test_forecast_by_quarter_uses_quarter_quotas(
    crm: Any, seller: Any, forecast_deals: World
) -> None:
    result = _forecast(crm, seller, kind="quarter", **Q1)
    assert len(result.periods) == 1 and result.end == _day("2026-03-31")
    q1 = _rows(result)[("2026-01", None, "EUR")]
    # 3000 + 1534.56 + 500; 2100 + 482.4048 + 350; 1000 + 300; 4000 + 1500; 5500 / 20000.
    assert (q1.pipeline, q1.weighted, q1.committed, q1.won) == (
        D("5034.56"), D("2932.40"), D("1300.00"), D("5500.00"))
    assert (q1.quota, q1.attainment) == (D("20000.00"), D("0.2750"))
    assert _rows(result)[("2026-01", None, "USD")].quota is None  # a month quota


def test_forecast_shows_only_visible_deals_and_quotas(
    crm: Any, forecast_deals: World
) -> None:
    w = forecast_deals
    rows = _rows(_forecast(crm, w.bob, kind="month", by="owner", **Q1))  # visibility "own"
    assert set(rows) == {("2026-02", "bob", "EUR"), ("2026-02", "bob", "USD")}
    nina = make_user(crm, "nina@sales.example", REPORTS, visibility="team")
    _set_team(crm, nina, w.north)
    rows = _rows(_forecast(crm, nina, kind="month", by="team", **Q1))
    assert {key[1] for key in rows} == {"North"}
    assert rows[("2026-01", "North", "EUR")].quota == D("10000.00")  # her team's quota
    rows = _rows(_forecast(crm, nina, kind="month", by="total", **Q1))
    assert rows[("2026-01", None, "EUR")].quota == D("8000.00")
    assert ("2026-03", None, "EUR") not in rows  # Carl's, Dora's and the ownerless deal
    with pytest.raises(PermissionDenied):
        _forecast(crm, make_user(crm, "nobody@sales.example", ["sales.deal.view"]))


def test_forecast_ranges_default_and_refuse_bad_ones(crm: Any, seller: Any) -> None:
    with crm.unit_of_work(actor=seller, write=False) as uow:
        today = reports.today(uow)
        months = reports.forecast(uow)  # this quarter's months
        quarters = reports.forecast(uow, kind="quarter")  # this quarter and the next three
        one = reports.forecast(uow, kind="month", start=_day("2026-05-17"))
    first = reports.period_of(today, "quarter").starts_on
    assert [p.starts_on for p in months.periods] == [
        first, reports.add_months(first, 1), reports.add_months(first, 2)]
    assert [p.starts_on for p in quarters.periods] == [
        reports.add_months(first, 3 * n) for n in range(4)]
    assert (one.start, one.end) == (_day("2026-05-01"), _day("2026-07-31"))
    with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=seller) as uow:
        reports.forecast(uow, start=_day("2026-03-01"), end=_day("2026-02-01"))
    assert set(refused.value.messages) == {"to"}
    with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=seller) as uow:
        reports.forecast(uow, start=_day("2020-01-01"), end=_day("2026-01-01"))
    assert set(refused.value.messages) == {"to"}
    with pytest.raises(ValidationError) as refused:
        reports.forecast_args({"period": "week", "from": "2026-13-01", "by": "region"})
    assert set(refused.value.messages) == {"period", "from", "by"}
    assert reports.forecast_args({"period": "", "from": " 2026-02-03 "}) == {
        "kind": "month", "start": _day("2026-02-03"), "end": None, "by": "total"}


def test_forecast_runs_the_same_few_queries_however_many_deals(
    crm: Any, seller: Any, forecast_deals: World
) -> None:
    def count() -> int:
        with crm.unit_of_work(actor=seller, write=False) as uow, sql_statements(crm) as seen:
            reports.forecast(uow, kind="month", by="owner", **Q1)
        return len(seen)

    before = count()
    with crm.unit_of_work(source="test") as uow:
        for n in range(30):
            _deal(uow.session, forecast_deals, "Proposal", forecast_deals.dora, f"{n + 1}.00",
                  close="2026-02-10")
    assert count() == before <= 5


# -- quotas ------------------------------------------------------------------------------------


def test_quotas_are_set_replaced_listed_and_deleted(crm: Any, seller: Any, world: World) -> None:
    with crm.unit_of_work(actor=seller, source="test") as uow:
        first = quotas.set_quota(uow, {"owner_id": world.anna.id, "starts_on": "2026-04-01",
                                       "amount": "5000"})
        again = quotas.set_quota(uow, {"owner_id": world.anna.id, "starts_on": "2026-04-01",
                                       "amount": "6000", "currency": "SEK"})
        team = quotas.set_quota(uow, {"team_id": world.north, "period": "quarter",
                                      "starts_on": "2026-07-01", "amount": "90000"})
        assert again.id == first.id and (again.amount, again.currency) == (D("6000"), "SEK")
        listed = quotas.list_quotas(uow)
        assert [(row.quota.id, row.owner_name, row.team_name) for row in listed] == [
            (team.id, None, "North"), (first.id, "anna", None)]
        assert [row.quota.id for row in quotas.list_quotas(uow, after=(
            team.starts_on, team.id))] == [first.id]
        quotas.delete(uow, first.id)
        actions = list(uow.session.scalars(
            select(AuditEntry.action).where(AuditEntry.entity == "quota").order_by(AuditEntry.id)))
        assert actions == ["created", "updated", "created", "deleted"]
    with crm.session_factory() as session:
        assert session.scalars(select(Quota.id)).all() == [team.id]


def test_bad_quotas_name_their_fields(crm: Any, seller: Any, world: World) -> None:
    cases = [
        ({"owner_id": world.anna.id, "team_id": world.north, "starts_on": "2026-01-01",
          "amount": "1"}, {"owner_id", "team_id"}),
        ({"starts_on": "2026-01-01", "amount": "1"}, {"owner_id", "team_id"}),
        ({"owner_id": world.anna.id, "starts_on": "2026-01-15", "amount": "1"}, {"starts_on"}),
        ({"owner_id": world.anna.id, "period": "quarter", "starts_on": "2026-02-01",
          "amount": "1"}, {"starts_on"}),
        ({"owner_id": 999999, "starts_on": "2026-01-01", "amount": "-1"},
         {"amount", "owner_id"}),
        ({"owner_id": 999999, "starts_on": "2026-01-01", "amount": "1"}, {"owner_id"}),
        ({"team_id": 999999, "period": "year", "starts_on": "x", "amount": "1"},
         {"period", "starts_on", "team_id"}),
        ({"owner_id": "7", "starts_on": "2026-01-01", "amount": "1"}, {"owner_id"}),
    ]
    for data, fields in cases:
        with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=seller) as uow:
            quotas.set_quota(uow, data)
        assert set(refused.value.messages) == fields, data
    reader = make_user(crm, "reader@sales.example", REPORTS)
    with pytest.raises(PermissionDenied), crm.unit_of_work(actor=reader) as uow:
        quotas.set_quota(uow, {"owner_id": world.anna.id, "starts_on": "2026-01-01",
                               "amount": "1"})
    with crm.session_factory() as session:
        assert session.scalar(select(Quota.id)) is None


# -- the funnel --------------------------------------------------------------------------------


@pytest.fixture
def funnel_deals(crm: Any, world: World) -> World:
    """Four deals created in January 2026 with their stage history (and three that are not
    in the cohort); products X (on deal A, twice) and Y (on A and C)."""
    w = world
    with crm.unit_of_work(source="test") as uow:
        s = uow.session
        x = Product(code="X", name="Xylophone", unit_price=D("10"))
        y = Product(code="Y", name="Yodel kit", unit_price=D("20"))
        s.add_all([x, y])
        a = _deal(s, w, "Won", w.anna, "1000.00", created="2026-01-01 00:00",
                  closed="2026-01-18 00:00")
        b = _deal(s, w, "Lost", w.bob, "500.00", created="2026-01-02 00:00",
                  closed="2026-01-07 00:00")
        c = _deal(s, w, "Won", w.anna, "3000.00", currency="USD", created="2026-01-05 00:00",
                  closed="2026-01-21 00:00", customer=w.nordic)
        d = _deal(s, w, "Qualification", w.bob, "200.00", created="2026-01-10 00:00",
                  customer=w.nordic)
        outside = [
            _deal(s, w, "Won", w.anna, "9.00", created="2025-12-31 23:00",
                  closed="2026-01-03 00:00"),
            _deal(s, w, "Won", w.anna, "9.00", created="2026-02-01 00:00",
                  closed="2026-02-03 00:00"),
            _deal(s, w, "Won", w.anna, "9.00", created="2026-01-15 00:00",
                  closed="2026-01-16 00:00", archived=True),
        ]
        s.flush()
        s.add_all([OpportunityLine(opportunity_id=a.id, product_id=x.id, position=0),
                   OpportunityLine(opportunity_id=a.id, product_id=x.id, position=1),
                   OpportunityLine(opportunity_id=a.id, product_id=y.id, position=2),
                   OpportunityLine(opportunity_id=c.id, product_id=y.id, position=0),
                   OpportunityLine(opportunity_id=b.id, product_id=None, position=0)])
        history = {
            a: [("Qualification", "01 00:00", "03 00:00"), ("Needs analysis", "03 00:00",
                "08 00:00"), ("Proposal", "08 00:00", "18 00:00"), ("Won", "18 00:00", None)],
            b: [("Qualification", "02 00:00", "06 00:00"),
                ("Needs analysis", "06 00:00", "07 00:00"), ("Lost", "07 00:00", None)],
            # C skips Needs analysis.
            c: [("Qualification", "05 00:00", "11 00:00"), ("Proposal", "11 00:00", "21 00:00"),
                ("Won", "21 00:00", None)],
            # D goes back to Qualification: it entered it once.
            d: [("Qualification", "10 00:00", "12 00:00"), ("Needs analysis", "12 00:00",
                "13 00:00"), ("Qualification", "13 00:00", None)],
        }
        for deal in outside:
            history[deal] = [("Qualification", "01 00:00", "02 00:00"), ("Won", "02 00:00", None)]
        for deal, stays in history.items():
            for stage, entered, left in stays:
                s.add(StageStay(
                    opportunity_id=deal.id, stage_id=w.stages[stage].id,
                    entered_at=_at(f"2026-01-{entered}"),
                    left_at=_at(f"2026-01-{left}") if left else None,
                ))
        s.flush()
        funnel_store.rebuild(s)  # written behind the services: sum the days again
    return w


JANUARY = {"start": _day("2026-01-01"), "end": _day("2026-01-31")}


def _funnel(crm: Any, user: Any, **kwargs: Any) -> funnel.Funnel:
    """The funnel from the day sums, checked against the one read from the deals."""
    with crm.unit_of_work(actor=user, source="test", write=False) as uow:
        found = funnel.funnel(uow, **kwargs)
        assert found == funnel.funnel(uow, **kwargs, stored=False)
        return found


def test_funnel_counts_converts_and_times_each_stage(
    crm: Any, seller: Any, funnel_deals: World
) -> None:
    result = _funnel(crm, seller, **JANUARY)
    assert result.pipeline_name == "New business"
    steps = [(s.name, s.entered, s.from_previous, s.from_first, s.average_seconds, s.left)
             for s in result.steps]
    assert steps == [
        # Stays that left Qualification: 2, 4, 6 and 2 days.
        ("Qualification", 4, None, None, _days(3.5), 4),
        # A (5 days), B (1), D (1): 3 of 4.
        ("Needs analysis", 3, D("0.7500"), D("0.7500"), pytest.approx(_days(7 / 3)), 3),
        # A and C (C skipped Needs analysis), 10 days each.
        ("Proposal", 2, D("0.6667"), D("0.5000"), _days(10), 2),
        ("Negotiation", 0, D("0.0000"), D("0.0000"), None, 0),
        ("Won", 2, None, D("0.5000"), None, 0),
        ("Lost", 1, None, None, None, 0),
    ]
    overall = result.overall
    assert (overall.deals, overall.open, overall.won, overall.lost) == (4, 1, 2, 1)
    assert overall.win_rate == D("0.6667")
    assert overall.average_sizes == {"EUR": D("1000.00"), "USD": D("3000.00")}
    assert overall.average_cycle_seconds == pytest.approx(_days(16.5))  # 17 and 16 days
    assert result.breakdown == []


def test_funnel_breakdowns(crm: Any, seller: Any, funnel_deals: World) -> None:
    stage = {name: s.id for name, s in funnel_deals.stages.items()}

    def rows(by: str) -> dict[Any, funnel.BreakdownRow]:
        return {row.label: row for row in _funnel(crm, seller, by=by, **JANUARY).breakdown}

    owners = rows("owner")
    assert list(owners) == ["anna", "bob"]
    anna, bob = owners["anna"].outcomes, owners["bob"].outcomes
    assert (anna.deals, anna.won, anna.lost, anna.win_rate) == (2, 2, 0, D("1.0000"))
    assert anna.average_cycle_seconds == pytest.approx(_days(16.5))
    assert (bob.deals, bob.open, bob.lost, bob.win_rate, bob.average_cycle_seconds) == (
        2, 1, 1, D("0.0000"), None)
    assert owners["bob"].entered == {
        stage["Qualification"]: 2, stage["Needs analysis"]: 2, stage["Lost"]: 1}
    products = _funnel(crm, seller, by="product", **JANUARY).breakdown
    assert [(row.label, row.outcomes.deals) for row in products] == [
        ("Yodel kit", 2), (None, 2), ("Xylophone", 1)]
    assert products[0].outcomes.average_sizes == {"EUR": D("1000.00"), "USD": D("3000.00")}
    assert products[2].entered == {stage["Qualification"]: 1, stage["Needs analysis"]: 1,
                                   stage["Proposal"]: 1, stage["Won"]: 1}
    segments = rows("segment")
    assert {key: (row.outcomes.deals, row.outcomes.win_rate) for key, row in segments.items()} == {
        "Manufacturing": (2, D("0.5000")), "Retail": (2, D("1.0000"))}
    regions = rows("region")
    assert {key: row.outcomes.won for key, row in regions.items()} == {"DE": 1, "SE": 1}
    assert regions["SE"].entered[stage["Proposal"]] == 1


def test_funnel_visibility_pipeline_and_range(crm: Any, seller: Any, funnel_deals: World) -> None:
    mine = _funnel(crm, funnel_deals.bob, **JANUARY)  # visibility "own"
    assert (mine.overall.deals, mine.steps[0].entered, mine.overall.win_rate) == (
        2, 2, D("0.0000"))
    wider = _funnel(crm, seller, start=_day("2025-12-01"), end=_day("2026-02-28"))
    assert wider.overall.deals == 6  # the archived deal never counts
    with pytest.raises(ValidationError) as refused:
        _funnel(crm, seller, pipeline_id=999999)
    assert set(refused.value.messages) == {"pipeline_id"}
    with pytest.raises(ValidationError) as refused:
        _funnel(crm, seller, start=_day("2026-02-01"), end=_day("2026-01-01"))
    assert set(refused.value.messages) == {"to"}
    with pytest.raises(ValidationError) as refused:
        funnel.funnel_args({"pipeline_id": "one", "to": "soon", "by": "mood"})
    assert set(refused.value.messages) == {"pipeline_id", "to", "by"}


# -- pages -------------------------------------------------------------------------------------


def test_the_forecast_page_draws_its_chart_and_table(
    crm: Any, client: Any, forecast_deals: World
) -> None:
    ui_user(crm, "boss@sales.example", REPORTS)
    boss = UiBrowser(client, "boss@sales.example")
    page = boss.get("/sales/forecast?period=month&from=2026-01-01&to=2026-03-31&by=owner")
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" role="img"') == 2  # EUR, USD
    dash = " \u2013 "  # the en dash of the tooltips: series, dash, category: value
    assert f"Weighted{dash}Jan 2026: 2,100" in page and f"Quota{dash}Jan 2026: 8,000" in page
    assert "1,534.56" in page and "482.40" in page and "50.0 %" in page
    assert 'href="/sales/forecast"' in page and 'href="/sales/funnel"' in page  # navigation
    refused = boss.get("/sales/forecast?period=week&from=2026-03-01&to=2026-01-01", status=422)
    assert 'id="period-errors"' in refused and 'aria-invalid="true"' in refused
    refused = boss.get("/sales/forecast?from=2026-03-01&to=2026-01-01", status=422)
    assert 'id="to-errors"' in refused and "Must not be before the start." in refused
    dashboard = boss.get("/")
    assert "This month&#39;s forecast" in dashboard or "This month's forecast" in dashboard


def test_the_funnel_page_draws_the_funnel_and_the_breakdown(
    crm: Any, app: Any, client: Any, funnel_deals: World
) -> None:
    ui_user(crm, "boss@sales.example", REPORTS)
    boss = UiBrowser(client, "boss@sales.example")
    page = boss.get("/sales/funnel?from=2026-01-01&to=2026-01-31&by=product")
    assert "<svg" in page and "Qualification: 4" in page and "Needs analysis: 3" in page
    assert "75.0 %" in page and "66.7 %" in page and "16.5 days" in page
    assert "Yodel kit" in page and "No product" in page
    assert 'id="pipeline_id-errors"' in boss.get("/sales/funnel?pipeline_id=999999", status=422)
    assert 'id="pipeline_id-errors"' in boss.get(f"/sales/funnel?pipeline_id={2**40}",
                                                 status=422)
    ui_user(crm, "clerk@sales.example", ["sales.deal.view"])
    clerk = UiBrowser(app.test_client(), "clerk@sales.example")
    assert "sales.report.view" in clerk.get("/sales/funnel", status=403)
    clerk.get("/sales/forecast", status=403)
    assert 'href="/sales/forecast"' not in clerk.get("/")


def test_the_quota_page_sets_refuses_and_deletes(
    crm: Any, app: Any, client: Any, world: World
) -> None:
    ui_user(crm, "admin@sales.example", ["sales.admin", "user.admin"])
    admin = UiBrowser(client, "admin@sales.example")
    assert 'href="/sales/quotas"' in admin.get("/admin")
    page = admin.get("/sales/quotas")
    assert "There are no quotas yet." in page
    refused = admin.post("/sales/quotas", {
        "owner_id": str(world.anna.id), "team_id": str(world.north), "period": "quarter",
        "starts_on": "2026-02-01", "amount": "lots", "currency": "EUR"}, status=422)
    text = refused.get_data(as_text=True)
    for name in ("owner_id", "team_id", "starts_on", "amount"):
        assert f'id="{name}-errors"' in text, name
    assert 'value="lots"' in text
    admin.post("/sales/quotas", {"owner_id": str(world.anna.id), "team_id": "",
                                 "period": "quarter", "starts_on": "2026-04-01",
                                 "amount": "25000", "currency": "EUR"})
    page = admin.get("/sales/quotas")
    assert "Q2 2026" in page and "25,000.00 EUR" in page and "anna" in page
    with crm.session_factory() as session:
        quota_id = session.scalars(select(Quota.id)).one()
    admin.post(f"/sales/quotas/{quota_id}/delete", {})
    assert "There are no quotas yet." in admin.get("/sales/quotas")
    ui_user(crm, "viewer@sales.example", REPORTS)
    viewer = UiBrowser(app.test_client(), "viewer@sales.example")
    viewer.get("/sales/quotas", status=403)
    viewer.post("/sales/quotas", {"owner_id": str(world.anna.id), "starts_on": "2026-01-01",
                                  "amount": "1"}, status=403)


def test_the_quota_list_pages_by_period(crm: Any, client: Any, seller: Any, world: World) -> None:
    with crm.unit_of_work(actor=seller, source="test") as uow:
        for month in range(51):  # January 2022 to March 2026
            starts_on = reports.add_months(_day("2022-01-01"), month).isoformat()
            quotas.set_quota(uow, {"owner_id": world.anna.id, "starts_on": starts_on,
                                   "amount": str(1000 + month)})
    ui_user(crm, "admin@sales.example", ["sales.admin"])
    admin = UiBrowser(client, "admin@sales.example")
    first = admin.get("/sales/quotas")
    assert "Mar 2026" in first and "Feb 2022" in first and "Jan 2022" not in first
    second = admin.get(link_of(first))
    assert "Jan 2022" in second and "1,000.00 EUR" in second and "Feb 2022" not in second
    admin.get("/sales/quotas?after=yesterday", status=400)


# -- the API -----------------------------------------------------------------------------------


def test_the_forecast_api(crm: Any, client: Any, forecast_deals: World) -> None:
    api = ApiClient(client, api_token(crm, make_user(crm, "robot@sales.example", REPORTS)))
    response = api.get("/sales/forecast?period=month&from=2026-01-01&to=2026-03-31&by=owner")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["period"], body["by"], body["from"], body["to"]) == (
        "month", "owner", "2026-01-01", "2026-03-31")
    assert body["periods"][1] == {"starts_on": "2026-02-01", "ends_on": "2026-02-28"}
    anna = next(row for row in body["data"]
                if row["owner_id"] == forecast_deals.anna.id and row["currency"] == "EUR")
    assert anna == {
        "period": "2026-01-01", "owner_id": forecast_deals.anna.id, "name": "anna",
        "currency": "EUR", "pipeline": "3000.00", "weighted": "2100.00",
        "committed": "1000.00", "won": "4000.00", "quota": "8000.00", "attainment": 0.5,
        "open_deals": 2, "won_deals": 1,
    }
    team = api.get("/sales/forecast?period=quarter&from=2026-01-01&to=2026-03-31&by=team")
    assert {row.get("name") for row in team.get_json()["data"]} == {"North", "South", None}


@pytest.mark.parametrize(("query", "status", "fields"), [
    ("period=week", 400, {"period"}),
    ("from=2026-02-30", 400, {"from"}),
    ("by=region", 400, {"by"}),
    ("from=2026-03-01&to=2026-01-01", 422, {"to"}),
    ("period=month&from=2020-01-01&to=2026-01-01", 422, {"to"}),
])
def test_the_forecast_api_refuses_bad_parameters(
    crm: Any, client: Any, query: str, status: int, fields: set[str]
) -> None:
    api = ApiClient(client, api_token(crm, make_user(crm, "robot@sales.example", REPORTS)))
    response = api.get(f"/sales/forecast?{query}")
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert set(response.get_json()["errors"]) == fields


def test_the_funnel_api(crm: Any, client: Any, funnel_deals: World) -> None:
    api = ApiClient(client, api_token(crm, make_user(crm, "robot@sales.example", REPORTS)))
    response = api.get("/sales/funnel?from=2026-01-01&to=2026-01-31&by=owner")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["stages"][1] == {
        "stage_id": funnel_deals.stages["Needs analysis"].id, "name": "Needs analysis",
        "outcome": "open", "entered": 3, "conversion_from_previous": 0.75,
        "conversion_from_first": 0.75, "average_seconds_in_stage": 201600, "stays_left": 3,
    }
    assert body["overall"] == {
        "deals": 4, "open": 1, "won": 2, "lost": 1, "win_rate": 0.6667,
        "won_amount": {"EUR": "1000.00", "USD": "3000.00"},
        "average_won_amount": {"EUR": "1000.00", "USD": "3000.00"},
        "average_cycle_seconds": 1425600,
    }
    assert [row["name"] for row in body["breakdown"]] == ["anna", "bob"]
    for query, status, field in (("pipeline_id=abc", 400, "pipeline_id"),
                                 ("pipeline_id=999999", 422, "pipeline_id"),
                                 (f"pipeline_id={2**40}", 400, "pipeline_id"),
                                 ("by=colour", 400, "by")):
        refused = api.get(f"/sales/funnel?{query}")
        assert refused.status_code == status and field in refused.get_json()["errors"]
    assert ApiClient(client, None).get("/sales/funnel").status_code == 401
    clerk = ApiClient(client, api_token(crm, make_user(crm, "clerk@sales.example",
                                                       ["sales.deal.view"])))
    forbidden = clerk.get("/sales/forecast")
    assert forbidden.status_code == 403 and forbidden.mimetype == "application/problem+json"


def test_the_dashboard_widget_shows_the_users_month(crm: Any, client: Any, world: World) -> None:
    erin = ui_user(crm, "erin@sales.example", REPORTS)
    with crm.unit_of_work(actor=erin, write=False) as uow:
        month = reports.period_of(reports.today(uow), "month")
    close = month.ends_on.isoformat()
    with crm.unit_of_work(source="test") as uow:
        # 1200 at Proposal (50 %), committed; 800 with 25 %; Anna's deal is not Erin's.
        _deal(uow.session, world, "Proposal", erin, "1200.00", close=close, committed=True)
        _deal(uow.session, world, "Proposal", erin, "800.00", close=close, probability=25)
        _deal(uow.session, world, "Proposal", world.anna, "99999.00", close=close)
        uow.session.add(Quota(owner_id=erin.id, period="month", starts_on=month.starts_on,
                              amount=D("4000"), currency="EUR"))
    page = UiBrowser(client, "erin@sales.example").get("/")
    widget = page[page.index("widget-sales-forecast"):]
    assert "800.00" in widget and "1,200.00" in widget and "4,000.00" in widget
    assert "0.0 %" in widget and "99,999" not in widget


# -- quotas through the API ------------------------------------------------------------------


@pytest.fixture
def admin_api(crm: Any, client: Any) -> ApiClient:
    """The API as a sales administrator (who sets quotas)."""
    return ApiClient(client, api_token(crm, make_user(crm, "quotas@sales.example",
                                                      ["sales.admin"])))


def test_quotas_through_the_api(crm: Any, admin_api: ApiClient, world: World) -> None:
    created = admin_api.post("/sales/quotas", json={
        "owner_id": world.anna.id, "starts_on": "2026-04-01", "amount": "5000"})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert created.headers["Location"].endswith(f"/api/v1/sales/quotas/{body['id']}")
    assert body == {"id": body["id"], "owner_id": world.anna.id, "team_id": None,
                    "period": "month", "starts_on": "2026-04-01", "amount": "5000.00",
                    "currency": "EUR"}
    assert admin_api.get(f"/sales/quotas/{body['id']}").get_json() == body
    replaced = admin_api.post("/sales/quotas", json={
        "owner_id": world.anna.id, "starts_on": "2026-04-01", "amount": "6000"})
    assert replaced.status_code == 200 and replaced.get_json()["id"] == body["id"]
    changed = admin_api.patch(f"/sales/quotas/{body['id']}", json={"currency": "SEK"})
    assert changed.status_code == 200, changed.get_json()
    assert (changed.get_json()["amount"], changed.get_json()["currency"]) == ("6000.00", "SEK")
    bob = ApiClient(admin_api.client, api_token(crm, world.bob))  # reports, visibility "own"
    assert bob.get("/sales/quotas").get_json()["data"] == []  # Anna's: not Bob's to see
    assert bob.get(f"/sales/quotas/{body['id']}").status_code == 404
    anna = ApiClient(admin_api.client, api_token(crm, world.anna))
    assert [q["id"] for q in anna.get("/sales/quotas").get_json()["data"]] == [body["id"]]
    assert anna.patch(f"/sales/quotas/{body['id']}", json={"amount": "1"}).status_code == 403
    assert admin_api.delete(f"/sales/quotas/{body['id']}").status_code == 204
    assert admin_api.get(f"/sales/quotas/{body['id']}").status_code == 404
    with crm.session_factory() as session:
        actions = list(session.scalars(select(AuditEntry.action).where(
            AuditEntry.entity == "quota", AuditEntry.source == "api").order_by(AuditEntry.id)))
    assert actions == ["created", "updated", "updated", "deleted"]


def test_the_quota_api_names_refused_fields(crm: Any, admin_api: ApiClient, world: World) -> None:
    for data, fields in [
        ({"owner_id": world.anna.id, "starts_on": "2026-04-15", "amount": "1"}, {"starts_on"}),
        ({"team_id": world.north, "period": "year", "starts_on": "2026-04-01", "amount": "-1"},
         {"period", "amount"}),
        ({"starts_on": "2026-04-01", "amount": "1"}, {"owner_id", "team_id"}),
        ({"owner_id": 2**40, "starts_on": "2026-04-01", "amount": "1"}, {"owner_id"}),
        ({"owner_id": world.anna.id, "starts_on": "2026-04-01", "amount": "1", "x": 1}, {"x"}),
    ]:
        refused = admin_api.post("/sales/quotas", json=data)
        assert refused.status_code == 422, (data, refused.get_json())
        assert refused.mimetype == "application/problem+json"
        assert set(refused.get_json()["errors"]) == fields, data
    quota = admin_api.post("/sales/quotas", json={
        "team_id": world.north, "period": "quarter", "starts_on": "2026-07-01",
        "amount": "900"}).get_json()
    for data, fields in [({"owner_id": world.anna.id, "starts_on": "2026-10-01"},
                          {"owner_id", "starts_on"}),
                         ({"amount": "lots", "currency": "euro"}, {"amount", "currency"}),
                         ({"id": 7}, {"id"})]:
        refused = admin_api.patch(f"/sales/quotas/{quota['id']}", json=data)
        assert refused.status_code == 422 and set(refused.get_json()["errors"]) == fields, data
    assert admin_api.get(f"/sales/quotas/{quota['id']}").get_json() == quota  # unchanged
    for path in ("/sales/quotas/999999", "/sales/quotas/abc", f"/sales/quotas/{2**40}"):
        assert admin_api.get(path).status_code == 404
        assert admin_api.patch(path, json={"amount": "1"}).status_code == 404
        assert admin_api.delete(path).status_code == 404
    assert admin_api.post("/sales/quotas", data="x").status_code == 415


def test_the_quota_api_pages_latest_period_first(
    crm: Any, admin_api: ApiClient, world: World
) -> None:
    made = []
    for owner, period, day in [(world.anna, "month", "2026-01-01"),
                               (world.bob, "month", "2026-03-01"),
                               (world.anna, "month", "2026-03-01"),
                               (world.carl, "quarter", "2026-04-01"),
                               (world.dora, "month", "2025-12-01")]:
        made.append(admin_api.post("/sales/quotas", json={
            "owner_id": owner.id, "period": period, "starts_on": day, "amount": "10"}
        ).get_json())
    first = admin_api.get("/sales/quotas?limit=2").get_json()
    assert [q["starts_on"] for q in first["data"]] == ["2026-04-01", "2026-03-01"]
    every = admin_api.collect("/sales/quotas?limit=2")
    assert [q["id"] for q in every] == [made[i]["id"] for i in (3, 2, 1, 0, 4)]
    months = admin_api.collect("/sales/quotas?limit=1&period=month")
    assert [q["starts_on"] for q in months] == [
        "2026-03-01", "2026-03-01", "2026-01-01", "2025-12-01"]
    assert admin_api.get("/sales/quotas?period=year").status_code == 400
    assert admin_api.get("/sales/quotas?cursor=garbage").status_code == 400


def test_the_quota_api_reads_for_report_readers_and_writes_for_the_sales_admin(
    crm: Any, client: Any, world: World
) -> None:
    with crm.unit_of_work(source="test") as uow:
        quota = Quota(owner_id=world.anna.id, period="month", starts_on=_day("2026-01-01"),
                      amount=D("10"), currency="EUR")
        uow.session.add(quota)
    # Report readers see quotas in the forecast, and read them here; setting them is the
    # sales admin's, as on the quota page. Without either permission: nothing.
    reader = ApiClient(client, api_token(crm, make_user(crm, "reader@sales.example",
                                                        REPORTS)))
    clerk = ApiClient(client, api_token(crm, make_user(crm, "clerk@sales.example",
                                                       ["sales.deal.view"])))
    assert [q["id"] for q in reader.get("/sales/quotas").get_json()["data"]] == [quota.id]
    assert reader.get(f"/sales/quotas/{quota.id}").get_json()["amount"] == "10.00"
    for method, path, data, caller in [
        ("GET", "/sales/quotas", None, clerk),
        ("GET", f"/sales/quotas/{quota.id}", None, clerk),
        ("POST", "/sales/quotas", {"owner_id": world.anna.id, "starts_on": "2026-02-01",
                                   "amount": "1"}, reader),
        ("PATCH", f"/sales/quotas/{quota.id}", {"amount": "1"}, reader),
        ("DELETE", f"/sales/quotas/{quota.id}", None, reader),
    ]:
        denied = caller(method, path, json=data)
        assert denied.status_code == 403, (method, path)
        assert denied.mimetype == "application/problem+json"
        assert ApiClient(client, None)(method, path, json=data).status_code == 401
    with crm.session_factory() as session:
        assert session.scalars(select(Quota.amount)).all() == [D("10.00")]
