"""What several of the deal modules share: names of statuses and roles, weighted amounts,
sums per currency, request and form parsing, and the deal columns and queries that the
board, the list, the deal's page and the slots read.

Not a part: it adds no views and fills no slot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from flask import abort, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, and_, select
from sqlalchemy.orm import Session, aliased, join, outerjoin

from crm_core.authz import visible
from crm_core.ids import as_record_id
from crm_core.models import Contact, Customer, User
from crm_sales.models import ContactRole, Opportunity, Outcome, Pipeline, Stage

#: How pages name a deal's status.
STATUS_LABELS = {
    Outcome.OPEN.value: _l("Open"),
    Outcome.WON.value: _l("Won"),
    Outcome.LOST.value: _l("Lost"),
}
#: How pages name a contact's role in a deal.
ROLE_LABELS = {
    ContactRole.DECISION_MAKER.value: _l("Decision maker"),
    ContactRole.INFLUENCER.value: _l("Influencer"),
    ContactRole.CHAMPION.value: _l("Champion"),
    ContactRole.USER.value: _l("User"),
    ContactRole.OTHER.value: _l("Other"),
}
#: Deals' owners and stages' movers, aliased: visibility filters select from ``User`` in
#: subqueries, which an unaliased ``User`` of the outer query would correlate away.
Owner = aliased(User, name="owner")
Mover = aliased(User, name="mover")


def status_label(status: str | None) -> str:
    """The name of a deal's status in the request's language (else the code)."""
    return str(STATUS_LABELS.get(status or "", status or ""))


def role_label(role: str | None) -> str:
    """The name of a contact's role in a deal in the request's language (else the code)."""
    return str(ROLE_LABELS.get(role or "", role or ""))


def weighted(amount: Decimal | None, probability: int | None) -> Decimal:
    """``amount`` times ``probability`` percent, to the cent."""
    return (Decimal(amount or 0) * Decimal(probability or 0) / Decimal(100)).quantize(
        Decimal("0.01")
    )


def sums_by_currency(rows: Iterable[Any]) -> list[tuple[str, Decimal]]:
    """``(currency, amount)`` rows added up per currency, by currency."""
    totals: dict[str, Decimal] = {}
    for currency, amount in rows:
        totals[currency] = totals.get(currency, Decimal(0)) + Decimal(amount or 0)
    return sorted((currency, total.quantize(Decimal("0.01"))) for currency, total in totals.items())


def all_pipelines(session: Session) -> list[Pipeline]:
    """Every pipeline with its stages, in their order (two queries)."""
    return list(session.scalars(select(Pipeline).order_by(Pipeline.position, Pipeline.id)))


def id_arg(name: str) -> int | None:
    """The query parameter ``name`` as a record id; empty: ``None``; not an id: 400."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    ident = as_record_id(raw)
    if ident is None or ident < 1:
        abort(400)
    return ident


def form_integer(text: str) -> Any:
    """A form's whole number as a number; anything else as typed (the schema refuses it)."""
    return int(text) if re.fullmatch(r"[+-]?\d{1,18}", text) else text


def deal_columns() -> tuple[Any, ...]:
    """The columns lists and cards show of a deal."""
    return (
        Opportunity.id, Opportunity.name, Opportunity.customer_id, Opportunity.pipeline_id,
        Opportunity.stage_id, Opportunity.status, Opportunity.amount, Opportunity.currency,
        Opportunity.owner_id, Opportunity.expected_close, Opportunity.probability,
        Opportunity.version, Opportunity.closed_at,
    )


def with_names(user: User, source: Any, deals: Any, *columns: Any) -> Select[Any]:
    """``columns`` of ``source`` (a FROM whose deals' columns are ``deals``) with the names
    of the deals' customers (those ``user`` may see) and owners, joined explicitly (the
    visibility filters' subqueries leave the ORM no single side to join from)."""
    joined = outerjoin(
        outerjoin(source, Customer,
                  and_(Customer.id == deals.customer_id, visible(user, "customer"))),
        Owner, Owner.id == deals.owner_id,
    )
    return select(
        *columns, Customer.name.label("customer_name"), Owner.name.label("owner_name"),
        Owner.email.label("owner_email"),
    ).select_from(joined)


def deals_with_stages(user: User) -> Select[Any]:
    """Deals' list columns with their stage's name, their customer's and owner's names."""
    return with_names(
        user, join(Opportunity, Stage, Stage.id == Opportunity.stage_id), Opportunity,
        *deal_columns(), Stage.name.label("stage_name"),
    )


def by_close_date(statement: Select[Any]) -> Select[Any]:
    """``statement`` ordered by expected close date (no date: last), then id."""
    return statement.order_by(Opportunity.expected_close.asc().nulls_last(), Opportunity.id)


def contact_names(session: Session, user: User, ids: Iterable[int]) -> dict[int, str]:
    """The names of the contacts among ``ids`` that ``user`` may see (one query)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(Contact.id, Contact.first_name, Contact.last_name)
        .where(Contact.id.in_(wanted), visible(user, "contact"))
    )
    return {row.id: " ".join(p for p in (row.first_name, row.last_name) if p) or str(row.id)
            for row in rows}
