"""Forecasts: what the pipeline holds and what was won, per period, against quotas.

Both reports only read, need ``sales.report.view``, and count the deals the actor may
see (:func:`~crm_sales.services.opportunities.visible_deals`) that are not archived.
The database aggregates (``GROUP BY``, a ``CASE`` for a deal's period and for its
probability); Python only arranges the few rows that come back, never loops over deals.

Money is summed per currency, never across currencies, as whole cents (SQLite keeps
numeric columns as floating point: its ``TOTAL`` of whole numbers is exact up to
2^53, i.e. ~90 billion in a currency for weighted sums, and cannot overflow;
PostgreSQL's ``SUM`` is exact). Periods and cohorts are days in the installation's
time zone (the ``timezone`` setting, UTC without one).

**Forecast** (:func:`forecast`): for each month or quarter of a range, by owner, by
team (the owner's ``User.team_id``) or in total, and by currency:

- *pipeline*: the amount of the open deals expected to close in the period;
- *weighted*: each of those amounts times its effective probability (the deal's
  override, else its stage's);
- *committed*: the amount of those the owner committed (``committed``);
- *won*: the amount of the deals won (status ``won``) with ``closed_at`` in the period;
- *quota*: the quotas (:mod:`crm_sales.services.quotas`) of the same period kind that
  begin in the period: the owner's (by owner), the team's (by team), or the sum of the
  users' quotas (in total; team quotas are not added to them, they would count twice),
  each only among the quotas the actor may see; *attainment* is won / quota, when the
  quota's currency is the deal's.

The funnel is :mod:`crm_sales.services.funnel`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import EXCLUDE, Schema, fields, validate
from sqlalchemy import (
    Integer,
    case,
    func,
    literal_column,
    select,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from crm_core import UnitOfWork, ValidationError
from crm_core.authz import require
from crm_core.i18n import N_
from crm_core.models import Team, User
from crm_core.schemas import load_or_refuse
from crm_sales.models import (
    Opportunity,
    Outcome,
    Quota,
    Stage,
)
from crm_sales.services import sql
from crm_sales.services.opportunities import visible_deals
from crm_sales.services.quotas import visible_quotas

VIEW = "sales.report.view"
#: Period kinds of the forecast.
PERIOD_KINDS = ("month", "quarter")
#: How the forecast groups its figures.
GROUPINGS = ("owner", "team", "total")
#: Periods a forecast covers at most.
MAX_PERIODS = 36
#: Periods a forecast covers without a range: this quarter's months, or four quarters.
DEFAULT_SPAN = {"month": 3, "quarter": 4}
#: The days reports accept.
EARLIEST, LATEST = dt.date(1900, 1, 1), dt.date(9000, 12, 31)
CENT = Decimal("0.01")
RATIO = Decimal("0.0001")
ZERO = Decimal("0.00")


# -- periods -------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Period:
    """A month or a quarter, named by its first day."""

    kind: str
    starts_on: dt.date

    @property
    def next_start(self) -> dt.date:
        """The first day of the following period."""
        return add_months(self.starts_on, 1 if self.kind == "month" else 3)

    @property
    def ends_on(self) -> dt.date:
        """The last day of the period."""
        return self.next_start - dt.timedelta(days=1)

    @property
    def quarter(self) -> int:
        """The quarter of the year the period falls in (1 to 4)."""
        return (self.starts_on.month - 1) // 3 + 1


def add_months(day: dt.date, months: int) -> dt.date:
    """The first day of the month ``months`` after ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def period_of(day: dt.date, kind: str) -> Period:
    """The month or quarter ``day`` falls in."""
    month = day.month if kind == "month" else 3 * ((day.month - 1) // 3) + 1
    return Period(kind, dt.date(day.year, month, 1))


def periods_between(kind: str, start: dt.date, end: dt.date) -> list[Period]:
    """The periods from the one holding ``start`` to the one holding ``end``."""
    found = [period_of(start, kind)]
    last = period_of(end, kind)
    while found[-1] < last:
        found.append(Period(kind, found[-1].next_start))
    return found


def default_range(kind: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """This quarter's months, or this quarter and the next three."""
    first = period_of(today, "quarter").starts_on
    months = DEFAULT_SPAN[kind] * (1 if kind == "month" else 3)
    return first, add_months(first, months) - dt.timedelta(days=1)


# -- parameters ----------------------------------------------------------------------------

DAYS = validate.Range(min=EARLIEST, max=LATEST)


class ForecastArgs(Schema):
    """The forecast's query parameters: ``period``, ``from``, ``to``, ``by``."""

    class Meta:
        unknown = EXCLUDE

    period = fields.String(load_default="month", validate=validate.OneOf(PERIOD_KINDS))
    start = fields.Date(data_key="from", load_default=None, validate=DAYS)
    end = fields.Date(data_key="to", load_default=None, validate=DAYS)
    by = fields.String(load_default="total", validate=validate.OneOf(GROUPINGS))




def forecast_args(args: Mapping[str, str]) -> dict[str, Any]:
    """Query parameters as :func:`forecast`'s keyword arguments (empty ones left out);
    :class:`ValidationError` naming each malformed one."""
    loaded = load_or_refuse(ForecastArgs(), given(args))
    return {"kind": loaded["period"], "start": loaded["start"], "end": loaded["end"],
            "by": loaded["by"]}




def given(args: Mapping[str, str]) -> dict[str, str]:
    return {key: value.strip() for key, value in args.items() if value and value.strip()}


# -- the forecast --------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """A forecast's figures for one period, group and currency."""

    pipeline: Decimal = ZERO
    weighted: Decimal = ZERO
    committed: Decimal = ZERO
    won: Decimal = ZERO
    quota: Decimal | None = None
    open_deals: int = 0
    won_deals: int = 0

    @property
    def attainment(self) -> Decimal | None:
        """Won / quota (``0.5`` is half of it), none without a quota above zero."""
        if not self.quota:
            return None
        return (self.won / self.quota).quantize(RATIO, ROUND_HALF_UP)

    def __add__(self, other: Figures) -> Figures:
        quota = None
        if self.quota is not None or other.quota is not None:
            quota = (self.quota or ZERO) + (other.quota or ZERO)
        return Figures(
            self.pipeline + other.pipeline, self.weighted + other.weighted,
            self.committed + other.committed, self.won + other.won, quota,
            self.open_deals + other.open_deals, self.won_deals + other.won_deals,
        )


@dataclass(frozen=True)
class ForecastRow:
    """The figures of a group (an owner, a team, or everything) in a period and currency.

    ``group_id`` and ``group_name`` are ``None`` in total, and for the deals without an
    owner (by owner) or whose owner has no team (by team).
    """

    period: Period
    group_id: int | None
    group_name: str | None
    currency: str
    figures: Figures


@dataclass(frozen=True)
class Forecast:
    """A forecast: its periods, and a row per period, group and currency with figures."""

    kind: str
    by: str
    periods: list[Period]
    rows: list[ForecastRow]

    @property
    def start(self) -> dt.date:
        """The first day of the first period."""
        return self.periods[0].starts_on

    @property
    def end(self) -> dt.date:
        """The last day of the last period."""
        return self.periods[-1].ends_on

    def currencies(self) -> list[str]:
        """The currencies of the rows, in alphabetical order."""
        return sorted({row.currency for row in self.rows})

    def totals(self, currency: str) -> list[Figures]:
        """Per period, the figures of every group in ``currency`` added up."""
        sums = {period: Figures() for period in self.periods}
        for row in self.rows:
            if row.currency == currency:
                sums[row.period] = sums[row.period] + row.figures
        return [sums[period] for period in self.periods]


def forecast(
    uow: UnitOfWork,
    kind: str = "month",
    start: dt.date | None = None,
    end: dt.date | None = None,
    by: str = "total",
    *,
    owner_id: int | None = None,
) -> Forecast:
    """The forecast for the periods of ``kind`` from ``start``'s to ``end``'s (default:
    :func:`default_range`), grouped ``by`` owner, team or in total; ``owner_id`` keeps
    one owner's deals and quotas. Four queries, whatever the number of deals."""
    require(uow.actor, VIEW)
    check_choice("period", kind, PERIOD_KINDS)
    check_choice("by", by, GROUPINGS)
    periods = _forecast_periods(kind, start, end, today(uow))
    session, actor, zone = uow.session, uow.actor, zone_of(uow)
    cells: dict[tuple[int, int | None, str], _Cell] = {}

    def cell(index: int, group: int | None, currency: str) -> _Cell:
        return cells.setdefault((index, group, currency), _Cell())

    group = _forecast_group(by)
    filters = deal_filters(actor, owner_id)
    for index, group_id, currency, count, cents, weighted, committed in _open_deals(
        session, periods, group, filters
    ):
        found = cell(index, group_id, currency)
        found.open_deals, found.pipeline, found.weighted, found.committed = (
            count, cents, weighted, committed
        )
    for index, group_id, currency, count, cents in _won_deals(
        session, periods, group, filters, zone
    ):
        found = cell(index, group_id, currency)
        found.won_deals, found.won = count, cents
    for index, group_id, currency, cents in _quotas(session, actor, periods, by, owner_id):
        cell(index, group_id, currency).quota = cents
    names = group_names(session, by, {group_id for _i, group_id, _c in cells})
    rows = [
        ForecastRow(periods[index], group_id, names.get(group_id) if group_id else None,
                    currency, found.figures())
        for (index, group_id, currency), found in cells.items()
    ]
    rows.sort(key=lambda row: (row.period, row.group_name is None,
                               (row.group_name or "").casefold(), row.group_id or 0, row.currency))
    return Forecast(kind, by, periods, rows)


@dataclass
class _Cell:
    """Sums of one period, group and currency as they come from the database."""

    open_deals: int = 0
    won_deals: int = 0
    pipeline: Any = 0
    weighted: Any = 0
    committed: Any = 0
    won: Any = 0
    quota: Any = None

    def figures(self) -> Figures:
        """The sums as amounts."""
        return Figures(
            money(self.pipeline), money(self.weighted, 10000), money(self.committed),
            money(self.won), None if self.quota is None else money(self.quota),
            int(self.open_deals), int(self.won_deals),
        )


def _forecast_periods(
    kind: str, start: dt.date | None, end: dt.date | None, today: dt.date
) -> list[Period]:
    """The periods asked for; a range missing an end spans the default number of periods."""
    span = DEFAULT_SPAN[kind]
    if start is None and end is None:
        start, end = default_range(kind, today)
    elif end is None:
        assert start is not None
        end = _span_end(period_of(start, kind), span)
    elif start is None:
        start = _span_start(period_of(end, kind), span)
    if end < start:
        raise ValidationError({"to": [N_("Must not be before the start.")]})
    periods = periods_between(kind, start, end)
    if len(periods) > MAX_PERIODS:
        raise ValidationError({"to": [N_("Choose at most 36 months or quarters at a time.")]})
    return periods


def _span_end(first: Period, span: int) -> dt.date:
    """The last day of ``span`` periods beginning with ``first``."""
    months = span if first.kind == "month" else 3 * span
    return add_months(first.starts_on, months) - dt.timedelta(days=1)


def _span_start(last: Period, span: int) -> dt.date:
    """The first day of ``span`` periods ending with ``last``."""
    months = span - 1 if last.kind == "month" else 3 * (span - 1)
    return max(add_months(last.starts_on, -months), EARLIEST)


def _forecast_group(by: str) -> ColumnElement[Any] | None:
    """What the forecast groups deals by: the owner, their team, or nothing (in total)."""
    if by == "owner":
        return Opportunity.owner_id
    if by == "team":
        return User.team_id
    return None


def _open_deals(
    session: Session,
    periods: Sequence[Period],
    group: ColumnElement[Any] | None,
    filters: Sequence[ColumnElement[bool]],
) -> list[tuple[int, int | None, str, int, Any, Any, Any]]:
    """(period, group, currency, deals, pipeline cents, weighted cents-percent, committed
    cents) of the open deals expected to close in ``periods``."""
    cents = sql.cents(Opportunity.amount)
    probability = case(
        (Opportunity.probability.is_not(None), Opportunity.probability),
        else_=Stage.probability,
    )
    inner = (
        select(
            _bucket(Opportunity.expected_close, [p.starts_on for p in periods[1:]])
            .label("period"),
            *_group_column(group),
            Opportunity.currency.label("currency"),
            cents.label("cents"),
            (cents * probability).label("weighted"),
            case((Opportunity.committed.is_(True), cents), else_=0).label("committed"),
        )
        .join(Stage, Stage.id == Opportunity.stage_id)
        .where(
            Opportunity.status == Outcome.OPEN.value,
            Opportunity.expected_close >= periods[0].starts_on,
            Opportunity.expected_close < periods[-1].next_start,
            *filters,
        )
    )
    if group is User.team_id:
        inner = inner.outerjoin(User, User.id == Opportunity.owner_id)
    sub = inner.subquery()
    keys = _keys(sub, group is not None)
    statement = select(
        *keys, func.count(), sql.total(session, sub.c.cents), sql.total(session, sub.c.weighted),
        sql.total(session, sub.c.committed),
    ).group_by(*keys)
    return [_with_group(row, group is not None) for row in session.execute(statement)]


def _won_deals(
    session: Session,
    periods: Sequence[Period],
    group: ColumnElement[Any] | None,
    filters: Sequence[ColumnElement[bool]],
    zone: dt.tzinfo,
) -> list[tuple[int, int | None, str, int, Any]]:
    """(period, group, currency, deals, won cents) of the deals won in ``periods``."""
    cents = sql.cents(Opportunity.amount)
    boundaries = [moment(p.starts_on, zone) for p in periods[1:]]
    inner = select(
        _bucket(Opportunity.closed_at, boundaries).label("period"),
        *_group_column(group),
        Opportunity.currency.label("currency"),
        cents.label("cents"),
    ).where(
        Opportunity.status == Outcome.WON.value,
        Opportunity.closed_at >= moment(periods[0].starts_on, zone),
        Opportunity.closed_at < moment(periods[-1].next_start, zone),
        *filters,
    )
    if group is User.team_id:
        inner = inner.outerjoin(User, User.id == Opportunity.owner_id)
    sub = inner.subquery()
    keys = _keys(sub, group is not None)
    statement = select(*keys, func.count(), sql.total(session, sub.c.cents)).group_by(*keys)
    return [_with_group(row, group is not None) for row in session.execute(statement)]


def _quotas(
    session: Session, actor: Any, periods: Sequence[Period], by: str, owner_id: int | None
) -> list[tuple[int, int | None, str, Any]]:
    """(period, group, currency, quota cents) of the quotas of the periods' kind."""
    target = Quota.team_id if by == "team" else Quota.owner_id
    statement = (
        select(Quota.starts_on, target, Quota.currency, sql.total(session, sql.cents(Quota.amount)))
        .where(
            Quota.period == periods[0].kind,
            Quota.starts_on >= periods[0].starts_on,
            Quota.starts_on < periods[-1].next_start,
            target.is_not(None),
            visible_quotas(actor),
        )
        .group_by(Quota.starts_on, target, Quota.currency)
    )
    if owner_id is not None:
        statement = statement.where(Quota.owner_id == owner_id)
    index = {period.starts_on: number for number, period in enumerate(periods)}
    found: dict[tuple[int, int | None, str], Any] = {}
    for starts_on, group_id, currency, cents in session.execute(statement):
        key = (index[period_of(starts_on, periods[0].kind).starts_on],
               None if by == "total" else group_id, currency)
        found[key] = found.get(key, 0) + cents
    return [(*key, cents) for key, cents in found.items()]


def group_names(session: Session, by: str, ids: set[int | None]) -> dict[int, str]:
    """The names of the owners (names, else emails) or teams among ``ids``."""
    wanted = sorted(ident for ident in ids if ident is not None)
    if not wanted or by == "total":
        return {}
    if by == "team":
        rows = session.execute(select(Team.id, Team.name).where(Team.id.in_(wanted)))
        return {ident: name for ident, name in rows}
    rows = session.execute(select(User.id, User.name, User.email).where(User.id.in_(wanted)))
    return {ident: name or email for ident, name, email in rows}


def _group_column(group: ColumnElement[Any] | None) -> list[Any]:
    return [] if group is None else [group.label("grp")]


def _keys(sub: Any, grouped: bool) -> list[Any]:
    return [sub.c.period, *([sub.c.grp] if grouped else []), sub.c.currency]


def _with_group(row: Any, grouped: bool) -> Any:
    """A row of ``_keys`` as (period, group, currency, ...): ``None`` for the group in total."""
    values = tuple(row)
    if grouped:
        return values
    return (values[0], None, *values[1:])


# -- shared helpers ------------------------------------------------------------------------


def deal_filters(actor: Any, owner_id: int | None = None) -> list[ColumnElement[bool]]:
    """The deals a report counts: visible to ``actor``, not archived (``owner_id``'s)."""
    clauses = [visible_deals(actor), Opportunity.archived.is_(False)]
    if owner_id is not None:
        clauses.append(Opportunity.owner_id == owner_id)
    return clauses


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValidationError({name: [N_("Must be one of: %(choices)s.") % {
            "choices": ", ".join(choices)}]})








def _bucket(column: Any, boundaries: Sequence[Any]) -> ColumnElement[int]:
    """The index of the period ``column`` falls in, given the first days of the periods
    after the first one (rows are already within the periods)."""
    if not boundaries:
        return literal_column("0", Integer)
    return case(
        *[(column < boundary, number) for number, boundary in enumerate(boundaries)],
        else_=len(boundaries),
    )






def money(value: Any, scale: int = 100) -> Decimal:
    """A sum of cents (``scale`` 100) or of cents times percent (10000) as an amount."""
    return (Decimal(value or 0) / scale).quantize(CENT, ROUND_HALF_UP)


def ratio(part: int, whole: int) -> Decimal | None:
    return (Decimal(part) / Decimal(whole)).quantize(RATIO, ROUND_HALF_UP) if whole else None


def zone_of(uow: UnitOfWork) -> dt.tzinfo:
    """The installation's time zone (the ``timezone`` setting), UTC without one."""
    name = getattr(uow.crm.settings, "timezone", None) or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def today(uow: UnitOfWork) -> dt.date:
    """Today in the installation's time zone."""
    return dt.datetime.now(zone_of(uow)).date()


def moment(day: dt.date, zone: dt.tzinfo) -> dt.datetime:
    """Midnight at the start of ``day`` in ``zone``, in UTC."""
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)
