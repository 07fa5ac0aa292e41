"""The deals' slot functions (:mod:`crm_sales.web` gathers them for core's hooks).

The *Deals* navigation entry, the customer's *Open deals* panel and *Deals* tab, the
dashboard's *My open deals*, and the timeline entries of stage changes
(:func:`timeline_entries`, wired to ``crm_timeline_entries`` in :mod:`crm_sales.plugin`)
with their renderer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased, object_session

from crm_core.authz import has_permission
from crm_core.extensions import CustomerTab, MenuItem, Panel, TimelineEntry, TimelineRenderer
from crm_core.models import Customer, User
from crm_core.web.ui.access import current_crm
from crm_core.web.ui.names import customer_names
from crm_sales import web
from crm_sales.models import Opportunity, Outcome, Stage, StageStay
from crm_sales.parts.deals.common import (
    Mover,
    by_close_date,
    deal_columns,
    deals_with_stages,
    status_label,
    sums_by_currency,
    weighted,
)
from crm_sales.services.opportunities import EDIT, VIEW, visible_deals

#: Open deals on the customer's panel and on the dashboard widget.
PANEL_DEALS = 5
#: Deals the customer's tab lists, at most (a link leads to the list for the others).
TAB_DEALS = 200
#: The timeline entry type of a deal's move to a stage.
STAGE_CHANGE = "sales.stage_change"


@contextmanager
def _reading(record: Any = None) -> Iterator[Session]:
    """The session ``record`` was read with (a slot called inside a page's unit of work),
    else a new one."""
    session = object_session(record) if record is not None else None
    if session is not None:
        yield session
        return
    with current_crm().session_factory() as own:
        yield own


# -- navigation, customer page, dashboard -------------------------------------------------------


def menu_items(actor: User) -> list[MenuItem]:
    """*Deals* in the navigation: the board."""
    return [MenuItem(_l("Deals"), "crm_sales.board", order=30, permission=VIEW)]


def _open_deals(customer_id: int | None, owner_id: int | None, user: User) -> Select[Any]:
    """The visible, open, active deals of a customer or an owner, next closing first."""
    statement = select(*deal_columns(), Stage.name.label("stage_name"),
                       Stage.probability.label("stage_probability")).join(
        Stage, Stage.id == Opportunity.stage_id
    ).where(
        Opportunity.status == Outcome.OPEN.value, Opportunity.archived.is_(False),
        visible_deals(user),
    )
    if customer_id is not None:
        statement = statement.where(Opportunity.customer_id == customer_id)
    if owner_id is not None:
        statement = statement.where(Opportunity.owner_id == owner_id)
    return by_close_date(statement)


def _open_totals(
    session: Session, user: User, clause: ColumnElement[bool]
) -> tuple[int, list[tuple[str, Decimal]], list[tuple[str, Decimal]]]:
    """How many open deals match ``clause``, their amounts and weighted amounts by currency
    (one grouped query)."""
    percent = func.coalesce(Opportunity.probability, Stage.probability)
    rows = session.execute(
        select(
            Opportunity.currency, func.count(), func.sum(Opportunity.amount),
            func.sum(Opportunity.amount * percent, type_=Opportunity.amount.type),
        )
        .join(Stage, Stage.id == Opportunity.stage_id)
        .where(clause, Opportunity.status == Outcome.OPEN.value,
               Opportunity.archived.is_(False), visible_deals(user))
        .group_by(Opportunity.currency)
    ).all()
    count = sum(row[1] for row in rows)
    amounts = sums_by_currency((row[0], row[2]) for row in rows)
    weights = sums_by_currency((row[0], Decimal(row[3] or 0) / Decimal(100)) for row in rows)
    return count, amounts, weights


def customer_panels(customer: Customer, actor: User) -> list[Panel]:
    """*Open deals*: the customer's next closing open deals and their weighted total."""
    if not has_permission(actor, VIEW):
        return []
    with _reading(customer) as session:
        deals = session.execute(_open_deals(customer.id, None, actor).limit(PANEL_DEALS)).all()
        count, _amounts, weights = _open_totals(
            session, actor, Opportunity.customer_id == customer.id
        )
    return [Panel(
        "sales-open-deals", _("Open deals"), "crm_sales/deals/_customer_panel.html",
        {
            "deals": [(deal, weighted(deal.amount, _probability(deal))) for deal in deals],
            "count": count, "weighted_totals": weights, "customer_id": customer.id,
            "can_edit": has_permission(actor, EDIT),
        },
        order=20,
    )]


def _probability(deal: Any) -> int:
    return deal.probability if deal.probability is not None else deal.stage_probability


def customer_tabs(customer: Customer, actor: User) -> list[CustomerTab]:
    """*Deals*: every deal of the customer, with their count beside the title."""
    if not has_permission(actor, VIEW):
        return []
    clauses = (Opportunity.customer_id == customer.id, Opportunity.archived.is_(False),
               visible_deals(actor))
    with _reading(customer) as session:
        count = session.scalar(select(func.count()).select_from(Opportunity).where(*clauses)) or 0

    def load() -> dict[str, Any]:
        with _reading(customer) as session:
            statement = deals_with_stages(actor).where(*clauses).order_by(
                case((Opportunity.status == Outcome.OPEN.value, 0), else_=1),
                Opportunity.expected_close.asc().nulls_last(), Opportunity.id,
            ).limit(TAB_DEALS)
            deals = session.execute(statement).all()
        return {
            "deals": deals, "count": count, "customer_id": customer.id,
            "status_label": status_label, "can_edit": has_permission(actor, EDIT),
        }

    return [CustomerTab("deals", _("Deals"), "crm_sales/deals/_customer_tab.html", load,
                        order=20, count=count)]


def dashboard_widgets(actor: User) -> list[Panel]:
    """*My open deals*: the user's next closing open deals and what they add up to."""
    if not has_permission(actor, VIEW):
        return []
    with _reading() as session:
        deals = session.execute(_open_deals(None, actor.id, actor).limit(PANEL_DEALS)).all()
        count, amounts, _weights = _open_totals(session, actor, Opportunity.owner_id == actor.id)
        names = customer_names(session, actor, {deal.customer_id for deal in deals})
    return [Panel(
        "sales-my-deals", _("My open deals"), "crm_sales/deals/_dashboard_widget.html",
        {"deals": deals, "count": count, "totals": amounts, "customer_names": names},
        order=20,
    )]


# -- the customer's timeline --------------------------------------------------------------------


def timeline_renderers() -> list[TimelineRenderer]:
    """How a stage change looks on the customer's timeline."""
    return [TimelineRenderer(STAGE_CHANGE, "crm_sales/deals/_timeline_stage_change.html")]


def timeline_entries(
    session: Session,
    actor: User | None,
    customer_id: int,
    before: Any,
    limit: int,
    types: frozenset[str] | None,
    channels: frozenset[str] | None,
) -> list[TimelineEntry]:
    """The stage changes of the customer's deals that ``actor`` may see, newest first, after
    ``before`` (core's ``crm_timeline_entries``); a deal's first stay is where it started."""
    if (types is not None and STAGE_CHANGE not in types) or channels is not None:
        return []  # stage changes are on no channel
    if not has_permission(actor, VIEW):
        return []
    previous = func.lag(StageStay.stage_id).over(
        partition_by=StageStay.opportunity_id, order_by=(StageStay.entered_at, StageStay.id)
    ).label("previous_stage_id")
    stays = (
        select(StageStay.id, StageStay.opportunity_id, StageStay.stage_id, StageStay.entered_at,
               StageStay.moved_by, previous)
        .join(Opportunity, Opportunity.id == StageStay.opportunity_id)
        .where(Opportunity.customer_id == customer_id, Opportunity.archived.is_(False),
               visible_deals(actor))
        .subquery()
    )
    reached, left = aliased(Stage), aliased(Stage)
    statement = (
        select(stays.c.id, stays.c.entered_at, stays.c.opportunity_id, Opportunity.name,
               reached.name, reached.outcome, left.name, Mover.name, Mover.email)
        .join(Opportunity, Opportunity.id == stays.c.opportunity_id)
        .join(reached, reached.id == stays.c.stage_id)
        .outerjoin(left, left.id == stays.c.previous_stage_id)
        .outerjoin(Mover, Mover.id == stays.c.moved_by)
    )
    if before is not None:
        statement = statement.where(_before(before, stays.c.entered_at, stays.c.id))
    rows = session.execute(
        statement.order_by(stays.c.entered_at.desc(), stays.c.id.desc()).limit(limit)
    ).all()
    entries = []
    for ident, entered, deal_id, deal, stage, outcome, was, name, email in rows:
        if was is None:
            title = f"{deal} started in {stage}"
        else:
            title = f"{deal} moved from {was} to {stage}"
        entries.append(TimelineEntry(
            type=STAGE_CHANGE, id=ident, occurred_at=entered, title=title,
            url=f"{web.ui.url_prefix}/deals/{deal_id}",
            extra={"deal_id": deal_id, "deal": deal, "stage": stage, "outcome": outcome,
                   "previous_stage": was, "moved_by": name or email},
        ))
    return entries


def _before(cursor: Any, moment: Any, ident: Any) -> ColumnElement[bool]:
    """Stays after ``cursor`` in the timeline's newest-first order of (moment, type, id)."""
    if cursor.type > STAGE_CHANGE:
        return moment <= cursor.occurred_at
    if cursor.type < STAGE_CHANGE:
        return moment < cursor.occurred_at
    if not isinstance(cursor.id, int) or isinstance(cursor.id, bool):
        return moment <= cursor.occurred_at  # numbers come after any text id
    return or_(moment < cursor.occurred_at, and_(moment == cursor.occurred_at, ident < cursor.id))
