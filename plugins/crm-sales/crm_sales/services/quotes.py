"""Quotes: offers made from a deal's lines, numbered per year, sent, accepted or rejected.

A quote copies the deal's lines as they are when it is made (later changes to the deal
leave it alone), with each line's total (quantity times unit price, less the discount,
to the cent) and the sum, in the deal's currency. Its number is the next of its year
(``Q-2026-0001``, ``Q-2026-0002``...; a new year starts at 1): read from the highest of
the year and written inside a savepoint, so when another transaction took that number
meanwhile the unique constraint refuses it and the next one is tried. A quote goes
from *draft* to *sent*, then to *accepted* or *rejected*, and no other way.

Who sees a deal sees its quotes (:func:`crm_sales.services.opportunities.visible_deals`);
making one needs ``sales.deal.edit``, as does changing its status. Every write is
audited (entity ``quote``) and announced in the outbox in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError

from crm_core import NotFoundError, UnitOfWork, ValidationError, utcnow
from crm_core.authz import require
from crm_core.i18n import N_
from crm_core.ids import as_record_id
from crm_core.schemas import load_or_refuse
from crm_sales.models import Opportunity, Quote, QuoteLine
from crm_sales.services import opportunities

#: The entity name of quotes in the audit trail and the outbox.
ENTITY = "quote"
VIEW, EDIT = opportunities.VIEW, opportunities.EDIT
#: How long a quote is valid when its maker gives no date.
VALIDITY = dt.timedelta(days=30)
#: Numbers tried, one after another, when other transactions take them first.
NUMBER_ATTEMPTS = 5
#: Quotes of a list page, at most.
MAX_PAGE = 500


class QuoteStatus(enum.StrEnum):
    """Where a quote stands."""

    DRAFT = "draft"
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


#: The statuses each status may change to.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    QuoteStatus.DRAFT: (QuoteStatus.SENT,),
    QuoteStatus.SENT: (QuoteStatus.ACCEPTED, QuoteStatus.REJECTED),
    QuoteStatus.ACCEPTED: (),
    QuoteStatus.REJECTED: (),
}


class QuoteLineSchema(Schema):
    """A line of a quote, as copied from the deal."""

    id = fields.Integer(dump_only=True)
    position = fields.Integer(dump_only=True)
    product_id = fields.Integer(dump_only=True, allow_none=True)
    description = fields.String(dump_only=True)
    quantity = fields.Decimal(places=3, as_string=True, dump_only=True)
    unit_price = fields.Decimal(places=2, as_string=True, dump_only=True)
    discount_percent = fields.Decimal(places=2, as_string=True, dump_only=True)
    total = fields.Decimal(places=2, as_string=True, dump_only=True)


class QuoteSchema(Schema):
    """A quote as the API and events show it; only ``valid_until`` is given when making one."""

    id = fields.Integer(dump_only=True)
    number = fields.String(dump_only=True)
    opportunity_id = fields.Integer(dump_only=True)
    status = fields.String(dump_only=True)
    currency = fields.String(dump_only=True)
    valid_until = fields.Date(allow_none=True, load_default=None)
    total = fields.Decimal(places=2, as_string=True, dump_only=True)
    created_by = fields.Integer(dump_only=True, allow_none=True)
    lines = fields.List(fields.Nested(QuoteLineSchema), dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)


class StatusSchema(Schema):
    """A change of a quote's status."""

    status = fields.String(
        required=True, validate=validate.OneOf([status.value for status in QuoteStatus])
    )


# -- reading ------------------------------------------------------------------------------


def visible_quotes(actor: Any) -> ColumnElement[bool]:
    """The quotes ``actor`` may see: those of the deals they see (join the deal first)."""
    return opportunities.visible_deals(actor)


def get(uow: UnitOfWork, quote_id: Any, *, for_update: bool = False) -> Quote:
    """Quote ``quote_id``; :class:`NotFoundError` if missing or its deal is not visible.

    ``for_update`` locks the quote's row until the transaction ends (PostgreSQL; SQLite
    writes one transaction at a time anyway).
    """
    require(uow.actor, VIEW)
    ident = as_record_id(quote_id)
    found = None
    if ident is not None and ident > 0:
        statement = (
            select(Quote)
            .select_from(Quote)
            .join(Opportunity, Opportunity.id == Quote.opportunity_id)
            .where(Quote.id == ident, visible_quotes(uow.actor))
        )
        if for_update:
            statement = statement.with_for_update(of=Quote)
        found = uow.session.scalar(statement)
    if found is None:
        raise NotFoundError(ENTITY, quote_id)
    return found


def of_deal(
    uow: UnitOfWork, opportunity_id: Any, *, before_id: int | None = None, limit: int = 50
) -> list[Quote]:
    """The deal's quotes, newest first: up to ``limit``, those older than ``before_id``."""
    deal = _deal(uow, opportunity_id)
    statement = select(Quote).where(Quote.opportunity_id == deal.id)
    return _newest_first(uow, statement, before_id, limit)


def of_customer(
    uow: UnitOfWork, customer_id: int, *, before_id: int | None = None, limit: int = 50
) -> list[Quote]:
    """The quotes of the customer's deals that the actor sees, newest first."""
    require(uow.actor, VIEW)
    return _newest_first(uow, _of_customer(uow, customer_id, select(Quote)), before_id, limit)


def count_of_customer(uow: UnitOfWork, customer_id: int) -> int:
    """How many quotes of the customer's deals the actor sees."""
    require(uow.actor, VIEW)
    statement = _of_customer(uow, customer_id, select(func.count(Quote.id)))
    return int(uow.session.scalar(statement) or 0)


def allowed_statuses(quote: Quote) -> tuple[str, ...]:
    """The statuses ``quote`` may change to now."""
    return TRANSITIONS.get(quote.status, ())


def payload(quote: Quote) -> dict[str, Any]:
    """A quote as events and the API show it."""
    return QuoteSchema().dump(quote)  # type: ignore[no-any-return]


# -- writing ------------------------------------------------------------------------------


def create_from_opportunity(
    uow: UnitOfWork, opportunity_id: Any, valid_until: dt.date | str | None = None
) -> Quote:
    """A new draft quote of the deal's lines, numbered next in this year; valid until
    ``valid_until`` (a date or ``YYYY-MM-DD``; ``None``: :data:`VALIDITY` from today).

    A deal without lines is refused (:class:`ValidationError` on ``lines``).
    """
    require(uow.actor, EDIT)
    deal = _deal(uow, opportunity_id)
    now = utcnow()
    until = _valid_until(valid_until, now.date())
    if not deal.lines:
        raise ValidationError({"lines": [N_("The deal has no lines to quote; add some first.")]})
    quote = _insert_numbered(uow, deal, until, now)
    uow.record(ENTITY, "created", [(quote.id, {
        "number": (None, quote.number), "opportunity_id": (None, deal.id),
        "status": (None, quote.status), "currency": (None, quote.currency),
        "total": (None, quote.total), "valid_until": (None, quote.valid_until),
        "lines": (None, len(quote.lines)),
    })], [payload(quote)])
    return quote


def set_status(uow: UnitOfWork, quote_id: Any, status: Any) -> Quote:
    """Move the quote to ``status``: draft → sent → accepted or rejected, and no other way
    (:class:`ValidationError` on ``status``). The same status again changes nothing."""
    require(uow.actor, EDIT)
    quote = get(uow, quote_id, for_update=True)
    loaded = load_or_refuse(StatusSchema(), {"status": status})
    wanted = loaded["status"]
    if wanted == quote.status:
        return quote
    if wanted not in allowed_statuses(quote):
        raise ValidationError({"status": [
            N_("A draft quote can only be sent, a sent one accepted or rejected; an accepted "
               "or rejected quote keeps its status.")
        ]})
    previous = quote.status
    quote.status = wanted
    uow.session.flush()
    uow.record(ENTITY, "status_changed", [(quote.id, {"status": (previous, wanted)})],
               [payload(quote)])
    return quote


# -- helpers ------------------------------------------------------------------------------


def _deal(uow: UnitOfWork, opportunity_id: Any) -> Opportunity:
    """The deal, through the deals' service (permission and visibility); a value that can
    name no row is not found, as a missing one."""
    ident = as_record_id(opportunity_id)
    if ident is None or ident < 1:
        require(uow.actor, VIEW)
        raise NotFoundError(opportunities.ENTITY, opportunity_id)
    return opportunities.get(uow, ident)


def _valid_until(value: dt.date | str | None, today: dt.date) -> dt.date:
    if value is None or value == "":
        return today + VALIDITY
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        loaded = load_or_refuse(QuoteSchema(), {"valid_until": value})
        value = loaded["valid_until"]
        if value is None:
            return today + VALIDITY
    if value < today:
        raise ValidationError({"valid_until": [N_("Must not be in the past.")]})
    return value


def _insert_numbered(uow: UnitOfWork, deal: Opportunity, until: dt.date,
                     now: dt.datetime) -> Quote:
    """Insert the quote under the next free number of ``now``'s year (see the module)."""
    session = uow.session
    for attempt in range(NUMBER_ATTEMPTS):
        number = next_number(uow, now.year)
        try:
            with session.begin_nested():
                quote = Quote(
                    number=number, opportunity_id=deal.id, status=QuoteStatus.DRAFT.value,
                    currency=deal.currency, valid_until=until, created_by=uow.actor_id,
                    lines=_copied_lines(deal),
                )
                quote.total = sum((line.total for line in quote.lines), Decimal("0.00"))
                session.add(quote)
                session.flush()
        except IntegrityError:
            if attempt == NUMBER_ATTEMPTS - 1:
                raise
            continue
        return quote
    raise AssertionError("unreachable")  # pragma: no cover


def next_number(uow: UnitOfWork, year: int) -> str:
    """The number after the highest of ``year``'s quotes (``Q-<year>-0001`` for the first)."""
    prefix = f"Q-{year}-"
    last = uow.session.scalar(
        select(Quote.number)
        .where(Quote.number.like(f"{prefix}%"))
        .order_by(func.length(Quote.number).desc(), Quote.number.desc())
        .limit(1)
    )
    sequence = int(last[len(prefix):]) if last and last[len(prefix):].isdigit() else 0
    return f"{prefix}{sequence + 1:04d}"


def _copied_lines(deal: Opportunity) -> list[QuoteLine]:
    return [
        QuoteLine(
            position=position, product_id=line.product_id, description=line.description,
            quantity=line.quantity, unit_price=line.unit_price,
            discount_percent=line.discount_percent, total=line.total,
        )
        for position, line in enumerate(deal.lines)
    ]


def _of_customer(uow: UnitOfWork, customer_id: int, statement: Any) -> Any:
    joined = statement.select_from(Quote).join(Opportunity, Opportunity.id == Quote.opportunity_id)
    return joined.where(
        Opportunity.customer_id == customer_id, visible_quotes(uow.actor)
    )


def _newest_first(
    uow: UnitOfWork, statement: Any, before_id: int | None, limit: int
) -> list[Quote]:
    if before_id is not None:
        statement = statement.where(Quote.id < before_id)
    statement = statement.order_by(Quote.id.desc()).limit(max(1, min(limit, MAX_PAGE)))
    return list(uow.session.scalars(statement))
