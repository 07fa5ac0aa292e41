"""The deal's page (``/sales/deals/<id>``): details, contacts with their roles, lines with
totals, the stage history, the actions, and the sections other parts add (quotes, and
every part's ``deal_panels``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask import render_template
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core import utcnow
from crm_core.authz import has_permission
from crm_core.extensions import Panel
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.names import customer_names, user_names
from crm_sales import web
from crm_sales.models import LostReason, Opportunity, Pipeline, Product, Stage, StageStay
from crm_sales.parts.deals.common import (
    Mover,
    contact_names,
    role_label,
    status_label,
    weighted,
)
from crm_sales.services import opportunities
from crm_sales.services.opportunities import ARCHIVE, EDIT


@dataclass(frozen=True)
class Stay:
    """One stay of a deal in a stage, as the history shows it."""

    stage: str
    outcome: str
    entered_at: dt.datetime
    left_at: dt.datetime | None
    moved_by: str | None
    length: str


def duration_text(delta: dt.timedelta) -> str:
    """A stay's length as people say it: minutes, hours (under two days) or days."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    if minutes < 60:
        return ngettext("%(num)d minute", "%(num)d minutes", minutes)
    hours = minutes // 60
    if hours < 48:
        return ngettext("%(num)d hour", "%(num)d hours", hours)
    return ngettext("%(num)d day", "%(num)d days", hours // 24)


def stage_history(session: Session, deal_id: int) -> list[Stay]:
    """A deal's stays, oldest first, with the stages' and movers' names (one query).

    Read it for a deal the user may see (:func:`opportunities.get` first)."""
    rows = session.execute(
        select(StageStay.entered_at, StageStay.left_at, Stage.name, Stage.outcome, Mover.name,
               Mover.email)
        .join(Stage, Stage.id == StageStay.stage_id)
        .outerjoin(Mover, Mover.id == StageStay.moved_by)
        .where(StageStay.opportunity_id == deal_id)
        .order_by(StageStay.entered_at, StageStay.id)
    ).all()
    now = utcnow()
    return [
        Stay(stage, outcome, entered, left, (name or email) if (name or email) else None,
             duration_text((left or now) - entered))
        for entered, left, stage, outcome, name, email in rows
    ]


@web.ui.get("/deals/<int:deal_id>", endpoint="deal")
@page
def deal_page(deal_id: int) -> ResponseReturnValue:
    """The deal: details, contacts with roles, lines with totals, stage history, actions."""
    crm, user = current_crm(), actor()
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        deal = opportunities.get(uow, deal_id)
        session = uow.session
        customer_name = customer_names(session, user, {deal.customer_id}).get(deal.customer_id)
        owner = user_names(session, {deal.owner_id}).get(deal.owner_id or 0)
        pipeline_name = session.scalar(select(Pipeline.name).where(Pipeline.id == deal.pipeline_id))
        reason = (session.scalar(select(LostReason.name)
                                 .where(LostReason.id == deal.lost_reason_id))
                  if deal.lost_reason_id is not None else None)
        people = contact_names(session, user, [c.contact_id for c in deal.contacts])
        product_ids = {line.product_id for line in deal.lines if line.product_id}
        products = {
            row.id: f"{row.code} · {row.name}"
            for row in session.execute(
                select(Product.id, Product.code, Product.name).where(Product.id.in_(product_ids))
            )
        } if product_ids else {}
        return render_template(
            "crm_sales/deals/detail.html",
            deal=deal,
            customer_name=customer_name,
            owner=owner,
            pipeline_name=pipeline_name,
            lost_reason=reason,
            contacts=[(c.contact_id, people.get(c.contact_id), role_label(c.role))
                      for c in deal.contacts],
            lines=deal.lines,
            products=products,
            lines_total=sum((line.total for line in deal.lines), Decimal(0)),
            weighted_amount=weighted(deal.amount, deal.effective_probability),
            history=stage_history(session, deal.id),
            sections=_deal_sections(uow, deal),
            status_label=status_label,
            can_edit=has_permission(user, EDIT),
            can_archive=has_permission(user, ARCHIVE),
        )


def _deal_sections(uow: Any, deal: Opportunity) -> list[Panel]:
    """What other parts show on the deal's page, in ``order``: the quotes of the catalogue
    part (its ``deal_quotes(uow, deal_id)``), and every part's ``deal_panels(uow, deal)``.
    Each section's template renders its own card."""
    sections: list[Panel] = []
    for part in web.parts():
        if part.__name__ == "crm_sales.parts.catalogue" and hasattr(part, "deal_quotes"):
            sections.append(Panel("quotes", _("Quotes"), "crm_sales/quotes/_deal_quotes.html",
                                  part.deal_quotes(uow, deal.id), order=10))
    sections += web.collect("deal_panels", uow, deal)
    return sorted(sections, key=lambda section: section.order)
