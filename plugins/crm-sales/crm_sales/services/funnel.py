"""The funnel: how the deals created in a date range moved through a pipeline's stages.

For a pipeline and the deals created in a range (the cohort), per stage in the
pipeline's order: how many deals ever entered it (from the stage history,
:class:`~crm_sales.models.StageStay`, once per deal), the conversion from the previous
stage and from the first one (the won stage follows the last open stage; lost stages
come last, without conversions), and the average time spent in it (entered to left,
over the stays that left, in whole seconds per stay). A deal that skipped a stage did
not enter it, so a stage may convert more than 100% of the one before. Overall: the win
rate (won / closed), the average won deal per currency, the average sales cycle
(created to closed, won deals); broken down, with the same figures, by owner, by
product (the deals with a line of the product; a deal with two products counts for
both), by segment (the customer's industry) or by region (the customer's country).

Like the forecast, it needs ``sales.report.view``, counts the deals the actor may see
that are not archived, and takes days in the installation's time zone.

Where the figures come from: the whole days (UTC) of the range from the sums kept per
day (:mod:`crm_sales.services.funnel_store`, every breakdown), the hours at either end
that fall on part of a UTC day (a time zone other than UTC) from the deals themselves.
Either way the same figures: the tests compare both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate
from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from crm_core import UnitOfWork, ValidationError
from crm_core.authz import owned_by_visible_users, require
from crm_core.i18n import N_
from crm_core.ids import MAX_ID
from crm_core.models import Customer
from crm_core.schemas import load_or_refuse
from crm_sales.models import (
    FunnelOutcomeDay,
    FunnelStageDay,
    Opportunity,
    OpportunityLine,
    Outcome,
    Pipeline,
    Product,
    Stage,
    StageStay,
)
from crm_sales.services import sql
from crm_sales.services.opportunities import default_pipeline
from crm_sales.services.reports import (
    CENT,
    DAYS,
    VIEW,
    add_months,
    check_choice,
    deal_filters,
    given,
    group_names,
    moment,
    money,
    period_of,
    ratio,
    today,
    zone_of,
)

#: How the funnel can break its figures down.
BREAKDOWNS = ("owner", "product", "segment", "region")


class FunnelArgs(Schema):
    """The funnel's query parameters: ``pipeline_id``, ``from``, ``to``, ``by``."""

    class Meta:
        unknown = EXCLUDE

    pipeline_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_ID))
    start = fields.Date(data_key="from", load_default=None, validate=DAYS)
    end = fields.Date(data_key="to", load_default=None, validate=DAYS)
    by = fields.String(load_default=None, validate=validate.OneOf(BREAKDOWNS))


def funnel_args(args: Mapping[str, str]) -> dict[str, Any]:
    """Query parameters as :func:`funnel`'s keyword arguments (empty ones left out);
    :class:`ValidationError` naming each malformed one."""
    return load_or_refuse(FunnelArgs(), given(args))


# -- what it returns -------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """A stage of the funnel: deals that entered it, conversions, time spent in it."""

    stage_id: int
    name: str
    outcome: str
    entered: int
    from_previous: Decimal | None
    from_first: Decimal | None
    average_seconds: float | None
    left: int


@dataclass(frozen=True)
class Outcomes:
    """How the deals of a cohort (or of a part of it) ended up."""

    deals: int = 0
    open: int = 0
    won: int = 0
    lost: int = 0
    won_amounts: Mapping[str, Decimal] = field(default_factory=dict)
    won_counts: Mapping[str, int] = field(default_factory=dict)
    average_cycle_seconds: float | None = None

    @property
    def win_rate(self) -> Decimal | None:
        """Won / closed (won or lost); none before any deal closed."""
        closed = self.won + self.lost
        return ratio(self.won, closed)

    @property
    def average_sizes(self) -> dict[str, Decimal]:
        """The average amount of a won deal, per currency."""
        return {
            currency: (amount / self.won_counts[currency]).quantize(CENT, ROUND_HALF_UP)
            for currency, amount in sorted(self.won_amounts.items())
            if self.won_counts.get(currency)
        }


@dataclass(frozen=True)
class BreakdownRow:
    """The funnel of a part of the cohort: an owner's deals, a product's, a segment's...

    ``key`` is the owner's or product's id, the industry or the country code; ``None``
    for the deals without one. ``entered`` maps stage ids to the deals that entered them.
    """

    key: int | str | None
    label: str | None
    outcomes: Outcomes
    entered: Mapping[int, int]


@dataclass(frozen=True)
class Funnel:
    """A pipeline's funnel for the deals created from ``start`` to ``end`` (both included)."""

    pipeline_id: int
    pipeline_name: str
    start: dt.date
    end: dt.date
    by: str | None
    steps: list[Step]
    overall: Outcomes
    breakdown: list[BreakdownRow]


# -- the report ------------------------------------------------------------------------------


def funnel(
    uow: UnitOfWork,
    pipeline_id: int | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    by: str | None = None,
    *,
    stored: bool = True,
) -> Funnel:
    """The funnel of ``pipeline_id`` (default: the default pipeline) for the deals created
    from ``start`` to ``end`` (default: the last twelve months, this one included),
    broken down ``by`` owner, product, segment or region. ``stored=False`` reads every
    figure from the deals themselves, not from the day sums (to check them)."""
    require(uow.actor, VIEW)
    if by is not None:
        check_choice("by", by, BREAKDOWNS)
    pipeline = _pipeline(uow, pipeline_id)
    current = today(uow)
    if end is None:
        end = current if start is None or start <= current else start
    if start is None:
        start = add_months(period_of(min(end, current), "month").starts_on, -11)
    if end < start:
        raise ValidationError({"to": [N_("Must not be before the start.")]})
    zone = zone_of(uow)
    window = (moment(start, zone), moment(end + dt.timedelta(days=1), zone))
    reader = _Reader(uow, pipeline.id, window, stored)
    overall, parts = reader.counts(by)
    stages = list(pipeline.stages)
    steps = _steps(stages, overall.stage_totals())
    outcomes = _tally(overall.outcomes).get(None, Outcomes())
    breakdown = [] if by is None else _breakdown(
        uow.session, by, parts or _Counts(), {stage.id for stage in stages})
    return Funnel(pipeline.id, pipeline.name, start, end, by, steps, outcomes, breakdown)


def pipelines(uow: UnitOfWork) -> list[tuple[int, str]]:
    """Every pipeline as (id, name), the default first, then in their order."""
    require(uow.actor, VIEW)
    rows = uow.session.execute(
        select(Pipeline.id, Pipeline.name)
        .order_by(Pipeline.is_default.desc(), Pipeline.position, Pipeline.id)
    )
    return [(ident, name) for ident, name in rows]


def _pipeline(uow: UnitOfWork, pipeline_id: int | None) -> Pipeline:
    if pipeline_id is None:
        return default_pipeline(uow)
    found = uow.session.get(Pipeline, pipeline_id)
    if found is None:
        raise ValidationError({"pipeline_id": [N_("No such pipeline.")]})
    return found


# -- counting --------------------------------------------------------------------------------


@dataclass
class _Counts:
    """Figures that add up: per (key, stage) [entered, stays left, seconds], and outcome
    rows (key, status, currency, deals, won cents, cycle seconds)."""

    stages: dict[tuple[Any, int], list[int]] = field(default_factory=dict)
    outcomes: list[tuple[Any, str, str, int, int, int]] = field(default_factory=list)

    def add_stage(self, key: Any, stage_id: int, entered: Any, left: Any, seconds: Any) -> None:
        """Add one stage's figures of ``key``'s deals."""
        found = self.stages.setdefault((key, stage_id), [0, 0, 0])
        found[0] += int(entered or 0)
        found[1] += int(left or 0)
        found[2] += int(seconds or 0)

    def add(self, other: _Counts) -> None:
        """Add ``other``'s figures to these."""
        for (key, stage_id), (entered, left, seconds) in other.stages.items():
            self.add_stage(key, stage_id, entered, left, seconds)
        self.outcomes.extend(other.outcomes)

    def stage_totals(self) -> dict[int, tuple[int, int, int]]:
        """Per stage, the figures of every key added up."""
        totals: dict[int, list[int]] = {}
        for (_key, stage_id), figures in self.stages.items():
            found = totals.setdefault(stage_id, [0, 0, 0])
            for index, value in enumerate(figures):
                found[index] += value
        return {stage_id: (a, b, c) for stage_id, (a, b, c) in totals.items()}

    def collapsed(self) -> _Counts:
        """The same figures under one key (``None``)."""
        merged = _Counts(outcomes=[(None, *row[1:]) for row in self.outcomes])
        for (_key, stage_id), (entered, left, seconds) in self.stages.items():
            merged.add_stage(None, stage_id, entered, left, seconds)
        return merged


class _Reader:
    """Reads a pipeline's funnel figures for the deals created in ``window`` (UTC)."""

    def __init__(self, uow: UnitOfWork, pipeline_id: int,
                 window: tuple[dt.datetime, dt.datetime], stored: bool) -> None:
        self.session = uow.session
        self.actor = uow.actor
        self.pipeline_id = pipeline_id
        self.window = window
        self.stored = stored

    def counts(self, by: str | None) -> tuple[_Counts, _Counts | None]:
        """The cohort's figures in total, and per key of ``by`` (none without).

        Every deal has one owner, segment and region, so their parts add up to the
        total; a deal counts for each of its products, so the product parts do not.
        """
        if not self.stored:
            return self._live_counts(self.window, by)
        days, edges = whole_days(*self.window)
        if by == "owner":
            parts: _Counts | None = self._from_days(days, "", grouped=True)
            overall = parts.collapsed()
        else:
            overall = self._from_days(days, "", grouped=False)
            parts = self._from_days(days, by, grouped=True) if by else None
        for edge in edges:
            edge_overall, edge_parts = self._live_counts(edge, by)
            overall.add(edge_overall)
            if parts is not None and edge_parts is not None:
                parts.add(edge_parts)
        return overall, parts

    def _live_counts(self, window: tuple[dt.datetime, dt.datetime],
                     by: str | None) -> tuple[_Counts, _Counts | None]:
        """:meth:`counts` of the deals created in ``window``, read from the deals."""
        if by is None:
            return self._live(window, None), None
        parts = self._live(window, by)
        overall = self._live(window, None) if by == "product" else parts.collapsed()
        return overall, parts

    # -- the day sums --------------------------------------------------------------------

    def _from_days(self, days: tuple[dt.date, dt.date] | None, dimension: str,
                   grouped: bool) -> _Counts:
        """The stored figures of ``days`` (first, last) of ``dimension``, per owner or
        product when ``grouped``."""
        counts = _Counts()
        if days is None:
            return counts
        for model in (FunnelStageDay, FunnelOutcomeDay):
            key = model.value if dimension else model.owner_key
            keys = [key] if grouped else []
            where = (
                model.pipeline_id == self.pipeline_id,
                model.dimension == dimension,
                or_(*(and_(model.period == period, model.day.between(first, last))
                      for period, first, last in months_and_days(*days))),
                owned_by_visible_users(self.actor, model.owner_key),
            )
            if model is FunnelStageDay:
                statement = select(
                    *keys, model.stage_id, func.sum(model.entered), func.sum(model.left_stays),
                    func.sum(model.seconds),
                ).where(*where).group_by(*keys, model.stage_id)
                for row in self.session.execute(statement):
                    *grouped_key, stage_id, entered, left, seconds = row
                    counts.add_stage(_stored_key(grouped_key, dimension), stage_id, entered,
                                     left, seconds)
            else:
                statement = select(
                    *keys, model.status, model.currency, func.sum(model.deals),
                    func.sum(model.won_cents), func.sum(model.cycle_seconds),
                ).where(*where).group_by(*keys, model.status, model.currency)
                for row in self.session.execute(statement):
                    *grouped_key, status, currency, deals, cents, cycle = row
                    counts.outcomes.append((_stored_key(grouped_key, dimension), status,
                                            currency, int(deals), int(cents), int(cycle)))
        return counts

    # -- the deals themselves ------------------------------------------------------------

    def _live(self, window: tuple[dt.datetime, dt.datetime], by: str | None) -> _Counts:
        """The figures of the deals created in ``window``, read from the deals, per key
        of ``by`` (or under ``None``)."""
        cohort = [
            Opportunity.pipeline_id == self.pipeline_id,
            Opportunity.created_at >= window[0],
            Opportunity.created_at < window[1],
            *deal_filters(self.actor),
        ]
        key, join = _breakdown_key(by)
        counts = _Counts(outcomes=_outcome_rows(self.session, cohort, key, join))
        for value, stage_id, entered, left, seconds in _stage_rows(
            self.session, cohort, key, join
        ):
            counts.add_stage(value, stage_id, entered, left, seconds)
        return counts


def whole_days(
    start: dt.datetime, end: dt.datetime
) -> tuple[tuple[dt.date, dt.date] | None, list[tuple[dt.datetime, dt.datetime]]]:
    """The whole UTC days from ``start`` to ``end`` (first and last, ``None`` for none)
    and the parts of days before and after them."""
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    first = start.date() if start.timetz() == dt.time(tzinfo=dt.UTC) else (
        start.date() + dt.timedelta(days=1))
    last = end.date() - dt.timedelta(days=1)
    if first > last:
        return None, [(start, end)]

    def midnight(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)

    edges = []
    if start < midnight(first):
        edges.append((start, midnight(first)))
    if midnight(last + dt.timedelta(days=1)) < end:
        edges.append((midnight(last + dt.timedelta(days=1)), end))
    return (first, last), edges


def months_and_days(first: dt.date, last: dt.date) -> list[tuple[str, dt.date, dt.date]]:
    """The stored rows that sum the days from ``first`` to ``last``: (``"month"``, first
    month's first day, last month's first day) for the whole months among them, and
    (``"day"``, first, last) for the days before and after those."""
    start = first if first.day == 1 else add_months(first, 1)
    end = (last + dt.timedelta(days=1)).replace(day=1)  # the first day after the months
    if start >= end:
        return [("day", first, last)]
    found = [("month", start, add_months(end, -1))]
    if first < start:
        found.append(("day", first, start - dt.timedelta(days=1)))
    if end <= last:
        found.append(("day", end, last))
    return found


def _stored_key(grouped: Sequence[Any], dimension: str) -> Any:
    """A stored row's key as the live queries give it: an owner's or a product's id,
    ``None`` for none."""
    if not grouped:
        return None
    value = grouped[0]
    if dimension == "product":
        return int(value) if value else None
    if dimension:
        return value or None
    return int(value) or None


def _stage_rows(
    session: Session,
    cohort: Sequence[ColumnElement[bool]],
    key: ColumnElement[Any] | None,
    join: Callable[[Select[Any]], Select[Any]],
) -> list[tuple[Any, int, int, int, int]]:
    """(key, stage, deals that entered it, stays that left, their seconds) of the cohort.

    The stays are summed per deal and stage first, then per stage: each deal counts
    once however often it entered a stage, without a ``COUNT(DISTINCT)`` (which both
    databases can only do by sorting every stay).
    """
    keys = [] if key is None else [key.label("key")]
    per_deal = (
        join(
            select(
                *keys,
                StageStay.stage_id.label("stage"),
                func.coalesce(func.sum(sql.whole_seconds(
                    session, StageStay.entered_at, StageStay.left_at)), 0).label("seconds"),
                func.count(StageStay.left_at).label("left"),
            )
            .select_from(StageStay)
            .join(Opportunity, Opportunity.id == StageStay.opportunity_id)
            .where(*cohort)
        )
        .group_by(*([] if key is None else [key]), StageStay.opportunity_id, StageStay.stage_id)
        .subquery()
    )
    grouped = [] if key is None else [per_deal.c.key]
    statement = select(
        *grouped, per_deal.c.stage, func.count(), func.sum(per_deal.c.left),
        func.sum(per_deal.c.seconds),
    ).group_by(*grouped, per_deal.c.stage)
    rows = []
    for row in session.execute(statement):
        *value, stage_id, entered, left, seconds = row
        rows.append((value[0] if value else None, stage_id, int(entered), int(left or 0),
                     int(seconds or 0)))
    return rows


def _outcome_rows(
    session: Session,
    cohort: Sequence[ColumnElement[bool]],
    key: ColumnElement[Any] | None,
    join: Callable[[Select[Any]], Select[Any]],
) -> list[tuple[Any, str, str, int, int, int]]:
    """(key, status, currency, deals, won cents, won cycle seconds) of the cohort."""
    won = Opportunity.status == Outcome.WON.value
    cycle = case(
        (won, sql.whole_seconds(session, Opportunity.created_at, Opportunity.closed_at)),
        else_=0,
    )
    keys: list[Any] = [] if key is None else [key]
    # Currency first: SQLite would otherwise read the cohort in the order of the index on
    # (status, ...), one row lookup per deal, rather than scan it.
    statement = join(select(
        *keys, Opportunity.currency, Opportunity.status, func.count(),
        sql.total(session, case((won, sql.cents(Opportunity.amount)), else_=0)),
        sql.total(session, cycle),
    ).where(*cohort)).group_by(*keys, Opportunity.currency, Opportunity.status)
    found = []
    for row in session.execute(statement):
        *grouped, currency, status, deals, cents, cycle_seconds = row
        found.append((grouped[0] if grouped else None, status, currency, int(deals),
                      int(cents or 0), int(cycle_seconds or 0)))
    return found


def _breakdown_key(
    by: str | None,
) -> tuple[ColumnElement[Any] | None, Callable[[Select[Any]], Select[Any]]]:
    """The column a breakdown groups by (none in total), and the join that brings it in."""
    if by is None:
        return None, lambda statement: statement
    if by == "owner":
        return sql.unordered(Opportunity.owner_id), lambda statement: statement
    if by == "product":
        lines = (
            select(OpportunityLine.opportunity_id, OpportunityLine.product_id)
            .where(OpportunityLine.product_id.is_not(None))
            .distinct()
            .subquery()
        )
        return sql.unordered(lines.c.product_id), lambda statement: statement.outerjoin(
            lines, lines.c.opportunity_id == Opportunity.id
        )
    column = Customer.industry if by == "segment" else Customer.country
    return column, lambda statement: statement.join(
        Customer, Customer.id == Opportunity.customer_id
    )


# -- arranging -------------------------------------------------------------------------------


def _steps(stages: Sequence[Stage], figures: Mapping[int, tuple[int, int, int]]) -> list[Step]:
    """The funnel's steps: open and won stages in order with conversions, then lost ones."""
    steps: list[Step] = []
    first: int | None = None
    previous: int | None = None
    ordered = [s for s in stages if s.outcome != Outcome.LOST] + [
        s for s in stages if s.outcome == Outcome.LOST
    ]
    for stage in ordered:
        entered, left, seconds = figures.get(stage.id, (0, 0, 0))
        average = seconds / left if left else None
        if stage.outcome == Outcome.LOST:
            steps.append(Step(stage.id, stage.name, stage.outcome, entered, None, None,
                              average, left))
            continue
        from_previous = None if previous is None else ratio(entered, previous)
        from_first = None if first is None else ratio(entered, first)
        steps.append(Step(stage.id, stage.name, stage.outcome, entered, from_previous,
                          from_first, average, left))
        first = entered if first is None else first
        previous = entered
    return steps


def _tally(rows: Sequence[tuple[Any, ...]]) -> dict[Any, Outcomes]:
    """Outcome rows (key, status, currency, deals, cents, cycle) as :class:`Outcomes`
    per key; rows of the same key, status and currency add up."""
    counts: dict[Any, dict[str, int]] = {}
    cents: dict[Any, dict[str, int]] = {}
    won_counts: dict[Any, dict[str, int]] = {}
    cycles: dict[Any, int] = {}
    for key, status, currency, deals, won_cents, cycle in rows:
        per_status = counts.setdefault(key, {})
        per_status[status] = per_status.get(status, 0) + deals
        if status == Outcome.WON:
            per_currency = cents.setdefault(key, {})
            per_currency[currency] = per_currency.get(currency, 0) + won_cents
            per_count = won_counts.setdefault(key, {})
            per_count[currency] = per_count.get(currency, 0) + deals
            cycles[key] = cycles.get(key, 0) + cycle
    found = {}
    for key, per_status in counts.items():
        won = per_status.get(Outcome.WON.value, 0)
        found[key] = Outcomes(
            deals=sum(per_status.values()),
            open=per_status.get(Outcome.OPEN.value, 0),
            won=won,
            lost=per_status.get(Outcome.LOST.value, 0),
            won_amounts={currency: money(value)
                         for currency, value in cents.get(key, {}).items()},
            won_counts=won_counts.get(key, {}),
            average_cycle_seconds=cycles[key] / won if won else None,
        )
    return found


def _breakdown(
    session: Session, by: str, counts: _Counts, stage_ids: set[int]
) -> list[BreakdownRow]:
    """The breakdown's rows: outcomes and entries in the pipeline's stages per key,
    biggest first (a deal moved in from another pipeline has stays there too)."""
    outcomes = _tally(counts.outcomes)
    entered: dict[Any, dict[int, int]] = {}
    for (key, stage_id), figures in counts.stages.items():
        if stage_id in stage_ids and figures[0]:
            entered.setdefault(key, {})[stage_id] = figures[0]
    labels = _breakdown_labels(session, by, set(outcomes))
    rows = [
        BreakdownRow(value, labels.get(value) if value is not None else None, found,
                     entered.get(value, {}))
        for value, found in outcomes.items() if found.deals
    ]
    rows.sort(key=lambda row: (-row.outcomes.deals, row.label is None,
                               str(row.label or "").casefold()))
    return rows


def _breakdown_labels(session: Session, by: str, keys: set[Any]) -> dict[Any, str]:
    """How the breakdown names its keys: owners' and products' names, else the key."""
    wanted = sorted(key for key in keys if key is not None)
    if not wanted:
        return {}
    if by == "owner":
        return group_names(session, "owner", set(wanted))
    if by == "product":
        rows = session.execute(
            select(Product.id, Product.name).where(Product.id.in_(wanted))
        )
        return {ident: name for ident, name in rows}
    return {key: str(key) for key in wanted}
