"""The funnel's figures summed per day, kept in step with the deals.

The funnel report (:func:`crm_sales.services.funnel.funnel`) counts, for the deals
created in a range, who entered which stage, how long the stays lasted and how the
deals ended. Read from the deals and their stage history, that is every stay of the
cohort: a million for a year of a busy pipeline. So the figures are also kept summed per
day (UTC) of a deal's creation, pipeline, owner and stage (:class:`FunnelStageDay`) or
currency and status (:class:`FunnelOutcomeDay`): once for all deals (dimension ``""``),
per product (the deals with a line of it), per segment and per region (the customer's
industry and country, as :class:`FunnelDeal` records them for each deal). A report over
a year sums some ten thousand of these rows instead.

Every write path of deals keeps them: :func:`changing` reads the cells of the deals
about to change, :meth:`Change.apply` (after the change, in the same transaction) adds
the difference, so a rolled-back change leaves them as they were. A customer's new
industry or country, a merge and its undoing call :func:`customers_changed`. Deals
changed behind the services (SQL by hand, a restored backup of one table) are put right
by :func:`rebuild` (``crm sales rebuild-funnel``). Archived deals are not counted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    bindparam,
    case,
    cast,
    delete,
    func,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy import insert as sql_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from crm_core.models import Customer
from crm_sales.models import (
    FUNNEL_KEY,
    FunnelDeal,
    FunnelOutcomeDay,
    FunnelStageDay,
    Opportunity,
    OpportunityLine,
    Outcome,
    StageStay,
)
from crm_sales.services.sql import cents, dialect, month_start, utc_day, whole_seconds

#: The breakdowns kept: every deal (``""``), per product, per segment (the customer's
#: industry) and per region (the customer's country).
DIMENSIONS = ("", "product", "segment", "region")
#: The grains of the sums: days, and months (named by their first day).
PERIODS = ("day", "month")
_STAGE_KEY = (*FUNNEL_KEY, "stage_id")
_STAGE_SUMS = ("entered", "left_stays", "seconds")
_OUTCOME_KEY = (*FUNNEL_KEY, "currency", "status")
_OUTCOME_SUMS = ("deals", "won_cents", "cycle_seconds")

Bind = Session | Connection
#: Cells of one table: key -> sums.
Cells = dict[tuple[Any, ...], tuple[int, ...]]


# -- what deals add up to ------------------------------------------------------------------


@dataclass(frozen=True)
class _Dimension:
    """How the deals' rows of one dimension get their ``value``: the expression, the join
    that brings it in, and whether it is a constant (not grouped by)."""

    word: Any
    value: Any
    join: Callable[[Select[Any]], Select[Any]]
    constant: bool


def _dimension(name: str) -> _Dimension:
    """The :class:`_Dimension` of ``name`` (one of :data:`DIMENSIONS`)."""
    word = _constant(name)
    if name == "product":
        products = (
            select(OpportunityLine.opportunity_id, OpportunityLine.product_id)
            .where(OpportunityLine.product_id.is_not(None))
            .distinct()
            .subquery()
        )
        return _Dimension(
            word, func.coalesce(cast(products.c.product_id, String), _constant("")),
            lambda statement: statement.outerjoin(
                products, products.c.opportunity_id == Opportunity.id),
            False,
        )
    if name in ("segment", "region"):
        column = FunnelDeal.segment if name == "segment" else FunnelDeal.region
        return _Dimension(
            word, func.coalesce(column, _constant("")),
            lambda statement: statement.outerjoin(
                FunnelDeal, FunnelDeal.opportunity_id == Opportunity.id),
            False,
        )
    return _Dimension(word, _constant(""), lambda statement: statement, True)


def _deal_keys(bind: Bind, dimension: _Dimension) -> list[Any]:
    """What the cells of a deal are grouped by (not the dimension's constants: PostgreSQL
    refuses to group by a constant)."""
    keys = [Opportunity.pipeline_id, utc_day(bind, Opportunity.created_at), _owner_key()]
    return keys if dimension.constant else [*keys, dimension.value]


def _owner_key() -> ColumnElement[int]:
    """The deal's owner, 0 for none (a constant written out, as for :func:`utc_day`)."""
    return func.coalesce(Opportunity.owner_id, literal_column("0"))


def _constant(word: str) -> ColumnElement[str]:
    """A dimension's or a period's word as an SQL constant (written out, not a parameter)."""
    assert word in DIMENSIONS or word in PERIODS
    return literal_column(f"'{word}'", String)


def stage_cells(bind: Bind, deals: ColumnElement[bool], name: str) -> Select[Any]:
    """The :class:`FunnelStageDay` rows of dimension ``name`` for the deals ``deals``
    selects (columns named like the table's)."""
    dimension = _dimension(name)
    per_deal = dimension.join(
        select(
            Opportunity.pipeline_id.label("pipeline_id"),
            dimension.word.label("dimension"),
            _constant("day").label("period"),
            utc_day(bind, Opportunity.created_at).label("day"),
            dimension.value.label("value"),
            _owner_key().label("owner_key"),
            StageStay.stage_id.label("stage_id"),
            func.count(StageStay.left_at).label("left_stays"),
            func.coalesce(
                func.sum(whole_seconds(bind, StageStay.entered_at, StageStay.left_at)), 0
            ).label("seconds"),
        )
        .join(StageStay, StageStay.opportunity_id == Opportunity.id)
        .where(deals, Opportunity.archived.is_(False))
    ).group_by(Opportunity.id, StageStay.stage_id, *_deal_keys(bind, dimension)).subquery()
    keys = [per_deal.c[name] for name in _STAGE_KEY]
    return select(
        *keys,
        func.count().label("entered"),
        func.sum(per_deal.c.left_stays).label("left_stays"),
        func.sum(per_deal.c.seconds).label("seconds"),
    ).group_by(*keys)


def outcome_cells(bind: Bind, deals: ColumnElement[bool], name: str) -> Select[Any]:
    """The :class:`FunnelOutcomeDay` rows of dimension ``name`` for the deals ``deals``
    selects (columns named like the table's)."""
    dimension = _dimension(name)
    won = Opportunity.status == Outcome.WON.value
    statement = dimension.join(select(
        Opportunity.pipeline_id.label("pipeline_id"),
        dimension.word.label("dimension"),
        _constant("day").label("period"),
        utc_day(bind, Opportunity.created_at).label("day"),
        dimension.value.label("value"),
        _owner_key().label("owner_key"),
        Opportunity.currency.label("currency"),
        Opportunity.status.label("status"),
        func.count().label("deals"),
        func.coalesce(func.sum(case((won, cents(Opportunity.amount)), else_=0)), 0)
        .label("won_cents"),
        func.coalesce(func.sum(case(
            (won, whole_seconds(bind, Opportunity.created_at, Opportunity.closed_at)),
            else_=0,
        )), 0).label("cycle_seconds"),
    ).where(deals, Opportunity.archived.is_(False)))
    return statement.group_by(
        *_deal_keys(bind, dimension), Opportunity.currency, Opportunity.status
    )


# -- keeping them ---------------------------------------------------------------------------


@dataclass
class Change:
    """Some deals' cells before a change; :meth:`apply` adds what the change made of them."""

    session: Session
    deal_ids: tuple[int, ...]
    before: tuple[Cells, Cells]

    def apply(self) -> None:
        """Flush, read the deals' cells again and add the difference to the stored sums."""
        self.session.flush()
        _write(self.session, _cells(self.session, self.deal_ids, fresh=True), self.before)


def changing(session: Session, deal_ids: Iterable[int]) -> Change:
    """Read the cells of ``deal_ids`` (none yet for deals still to create) before they
    change; call :meth:`Change.apply` once they have, in the same transaction. On
    PostgreSQL the deals' rows are locked until then, so two changes of one deal cannot
    both start from the same figures."""
    ids = tuple(sorted({int(ident) for ident in deal_ids}))
    if ids and dialect(session) == "postgresql":
        session.execute(select(Opportunity.id).where(Opportunity.id.in_(ids)).with_for_update())
    return Change(session, ids, _cells(session, ids) if ids else ({}, {}))


def added(session: Session, deal_ids: Sequence[int]) -> None:
    """Count new deals ``deal_ids`` (created in this transaction, flushed)."""
    Change(session, tuple(deal_ids), ({}, {})).apply()


def rebuild(bind: Bind, pipeline_id: int | None = None) -> tuple[int, int]:
    """Compute every cell again from the deals (of ``pipeline_id``, or all): delete and
    insert in one statement each. Returns the stage and outcome rows written."""
    deals = Opportunity.pipeline_id == pipeline_id if pipeline_id is not None else true()
    _record_values(bind, deals)
    written = []
    for model, cells in ((FunnelStageDay, stage_cells), (FunnelOutcomeDay, outcome_cells)):
        mine = true() if pipeline_id is None else model.pipeline_id == pipeline_id
        bind.execute(delete(model).where(mine))
        for name in DIMENSIONS:
            statement = cells(bind, deals, name)
            columns = [column.name for column in statement.selected_columns]
            bind.execute(sql_insert(model).from_select(columns, statement))
        bind.execute(_months_from_days(bind, model, mine))
        written.append(int(bind.scalar(select(func.count()).select_from(model).where(mine)) or 0))
    return written[0], written[1]


def customers_changed(session: Session, customer_ids: Iterable[int]) -> None:
    """Customers' industry or country may have changed (an update, a merge, an undone
    merge): count their deals under the segment and region they have now."""
    ids = sorted(set(customer_ids))
    if not ids:
        return
    stale = session.scalars(
        select(Opportunity.id)
        .join(Customer, Customer.id == Opportunity.customer_id)
        .outerjoin(FunnelDeal, FunnelDeal.opportunity_id == Opportunity.id)
        .where(Opportunity.customer_id.in_(ids), or_(
            FunnelDeal.opportunity_id.is_(None),
            FunnelDeal.segment != func.coalesce(Customer.industry, ""),
            FunnelDeal.region != func.coalesce(Customer.country, ""),
        ))
    ).all()
    if stale:
        changing(session, stale).apply()


def _record_values(bind: Bind, deals: ColumnElement[bool]) -> None:
    """Write each deal's customer's industry and country to :class:`FunnelDeal`."""
    bind.execute(delete(FunnelDeal).where(
        FunnelDeal.opportunity_id.in_(select(Opportunity.id).where(deals))))
    bind.execute(sql_insert(FunnelDeal).from_select(
        ["opportunity_id", "segment", "region"],
        select(Opportunity.id, func.coalesce(Customer.industry, ""),
               func.coalesce(Customer.country, ""))
        .join(Customer, Customer.id == Opportunity.customer_id)
        .where(deals),
    ))


def _months_from_days(bind: Bind, model: Any, where: ColumnElement[bool]) -> Any:
    """``INSERT`` of the month rows of ``model`` summed from its day rows (``where``)."""
    key, sums = (_STAGE_KEY, _STAGE_SUMS) if model is FunnelStageDay else (
        _OUTCOME_KEY, _OUTCOME_SUMS)
    month = month_start(bind, model.day)
    grouped = [month if name == "day" else getattr(model, name)
               for name in key if name != "period"]
    chosen = [
        _constant("month") if name == "period" else month if name == "day"
        else getattr(model, name)
        for name in key
    ]
    statement = (
        select(*chosen, *(func.sum(getattr(model, name)) for name in sums))
        .where(where, model.period == "day")
        .group_by(*grouped)
    )
    return sql_insert(model).from_select([*key, *sums], statement)


def _cells(
    session: Session, deal_ids: Sequence[int], *, fresh: bool = False
) -> tuple[Cells, Cells]:
    """The stage and outcome day cells ``deal_ids`` add up to: by the segment and region
    :class:`FunnelDeal` records, or (``fresh``) by their customers' industry and country
    now, which are then recorded.

    Three small queries (the deals, their stays, their products); the database computes
    every figure that needs rounding (days, cents, seconds) with the same expressions as
    :func:`stage_cells` and :func:`outcome_cells`, so both ways give the same sums.
    """
    if not deal_ids:
        return {}, {}
    statements = _statements(dialect(session))
    given = {"ids": list(deal_ids)}
    rows = session.execute(statements.deals, given).all()
    if fresh:
        _record(session, [(row[0], row[11], row[12]) for row in rows
                          if (row[9], row[10]) != (row[11], row[12])])
    deals = [(*row[:8], *(row[11:13] if fresh else row[9:11])) for row in rows if not row[8]]
    if not deals:
        return {}, {}
    stays: dict[int, dict[int, list[int]]] = {}
    for deal_id, stage_id, left, seconds in session.execute(statements.stays, given):
        figures = stays.setdefault(deal_id, {}).setdefault(stage_id, [1, 0, 0])
        figures[1] += 1 if left else 0
        figures[2] += int(seconds or 0)
    products: dict[int, list[str]] = {}
    for deal_id, product_id in session.execute(statements.products, given):
        products.setdefault(deal_id, []).append(str(product_id))
    stage_table: Cells = {}
    outcome_table: Cells = {}
    for (ident, pipeline_id, day, owner, currency, status, amount_cents, cycle,
         segment, region) in deals:
        won = status == Outcome.WON.value
        outcome = (1, int(amount_cents) if won else 0, int(cycle or 0) if won else 0)
        values = {"": [""], "product": products.get(ident) or [""],
                  "segment": [segment or ""], "region": [region or ""]}
        for dimension in DIMENSIONS:
            for value in values[dimension]:
                head = (pipeline_id, dimension, "day", day, value, int(owner))
                _plus(outcome_table, (*head, currency, status), outcome)
                for stage_id, figures in stays.get(ident, {}).items():
                    _plus(stage_table, (*head, stage_id), tuple(figures))
    return stage_table, outcome_table


@dataclass(frozen=True)
class _Statements:
    """The statements a change of deals runs, built once per database (``ids``: the deals)."""

    deals: Any
    stays: Any
    products: Any
    record: Any
    add_stages: Any
    add_outcomes: Any


@functools.cache
def _statements(database: str) -> _Statements:
    """:class:`_Statements` for ``database`` (``sqlite`` or ``postgresql``)."""
    ids = bindparam("ids", expanding=True)
    deals = (
        select(
            Opportunity.id, Opportunity.pipeline_id, utc_day(database, Opportunity.created_at),
            _owner_key(), Opportunity.currency, Opportunity.status, cents(Opportunity.amount),
            whole_seconds(database, Opportunity.created_at, Opportunity.closed_at),
            Opportunity.archived, FunnelDeal.segment, FunnelDeal.region,
            func.coalesce(Customer.industry, ""), func.coalesce(Customer.country, ""),
        )
        .join(Customer, Customer.id == Opportunity.customer_id)
        .outerjoin(FunnelDeal, FunnelDeal.opportunity_id == Opportunity.id)
        .where(Opportunity.id.in_(ids))
    )
    stays = select(
        StageStay.opportunity_id, StageStay.stage_id, StageStay.left_at.is_not(None),
        whole_seconds(database, StageStay.entered_at, StageStay.left_at),
    ).where(StageStay.opportunity_id.in_(ids))
    products = (
        select(OpportunityLine.opportunity_id, OpportunityLine.product_id)
        .where(OpportunityLine.opportunity_id.in_(ids), OpportunityLine.product_id.is_not(None))
        .distinct()
    )
    insert = postgresql.insert if database == "postgresql" else sqlite.insert
    record = insert(FunnelDeal)
    record = record.on_conflict_do_update(
        index_elements=["opportunity_id"],
        set_={"segment": record.excluded.segment, "region": record.excluded.region},
    )
    adds = []
    for model, key, sums in ((FunnelStageDay, _STAGE_KEY, _STAGE_SUMS),
                             (FunnelOutcomeDay, _OUTCOME_KEY, _OUTCOME_SUMS)):
        add = insert(model)
        adds.append(add.on_conflict_do_update(
            index_elements=list(key),
            set_={name: model.__table__.c[name] + add.excluded[name] for name in sums},
        ))
    return _Statements(deals, stays, products, record, adds[0], adds[1])


def _record(session: Session, values: Sequence[tuple[int, str, str]]) -> None:
    """Record (deal, segment, region) in :class:`FunnelDeal`."""
    if not values:
        return
    session.execute(_statements(dialect(session)).record,
                    [{"opportunity_id": ident, "segment": segment, "region": region}
                     for ident, segment, region in sorted(values)])


def _plus(table: Cells, key: tuple[Any, ...], sums: tuple[int, ...]) -> None:
    """Add ``sums`` to ``table[key]``."""
    current = table.get(key)
    table[key] = sums if current is None else tuple(
        a + b for a, b in zip(current, sums, strict=True))


def _write(session: Session, after: tuple[Cells, Cells], before: tuple[Cells, Cells]) -> None:
    """Add ``after - before`` to both tables."""
    _add(session, FunnelStageDay, _STAGE_KEY, _STAGE_SUMS,
         _with_months(_difference(after[0], before[0]), _STAGE_KEY))
    _add(session, FunnelOutcomeDay, _OUTCOME_KEY, _OUTCOME_SUMS,
         _with_months(_difference(after[1], before[1]), _OUTCOME_KEY))


def _with_months(cells: Cells, key: Sequence[str]) -> Cells:
    """Day cells and, added to them, the same sums per month."""
    period, day = key.index("period"), key.index("day")
    found = dict(cells)
    for cell, sums in cells.items():
        month = list(cell)
        month[period], month[day] = "month", cell[day].replace(day=1)
        _plus(found, tuple(month), sums)
    return found


def _difference(after: Cells, before: Cells) -> Cells:
    """``after - before`` per key, without the keys that did not change."""
    changed: Cells = {}
    for key in after.keys() | before.keys():
        new, old = after.get(key), before.get(key)
        width = len(new or old or ())
        delta = tuple((new or (0,) * width)[i] - (old or (0,) * width)[i] for i in range(width))
        if any(delta):
            changed[key] = delta
    return changed


def _add(session: Session, model: Any, key: Sequence[str], sums: Sequence[str],
         cells: Cells) -> None:
    """Add ``cells`` to ``model``'s rows (``INSERT ... ON CONFLICT DO UPDATE``)."""
    if not cells:
        return
    statements = _statements(dialect(session))
    statement = statements.add_stages if model is FunnelStageDay else statements.add_outcomes
    rows = [dict(zip((*key, *sums), (*cell, *values), strict=True))
            for cell, values in sorted(cells.items(), key=lambda item: repr(item[0]))]
    session.execute(statement, rows)
