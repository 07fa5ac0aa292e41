"""Deals through their service: create, move with history, refuse bad input, hooks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from crm_sales.models import Stage, StageStay
from crm_sales.services import opportunities
from sqlalchemy import select

from crm_core import ConflictError, ValidationError
from crm_core.models import AuditEntry


def _stage(crm: Any, name: str) -> Stage:
    with crm.session_factory() as session:
        return session.scalars(select(Stage).where(Stage.name == name)).one()


def test_a_deal_starts_in_the_first_stage_of_the_default_pipeline(crm, seller, acme):
    with crm.unit_of_work(actor=seller, source="test") as uow:
        deal = opportunities.create(uow, {
            "name": "Tools 2027", "customer_id": acme.id, "amount": "12000.50",
            "lines": [{"description": "Licences", "quantity": "10", "unit_price": "1000",
                       "discount_percent": "5"}],
        })
        assert deal.stage.name == "Qualification" and deal.status == "open"
        assert deal.owner_id == seller.id and deal.effective_probability == 10
        assert deal.lines[0].total == Decimal("9500.00")
        stays = opportunities.stage_history(uow, deal.id)
        assert [(s.stage_id, s.left_at) for s in stays] == [(deal.stage_id, None)]


def test_moving_keeps_the_history_and_won_closes_the_deal(crm, seller, acme):
    won = _stage(crm, "Won")
    with crm.unit_of_work(actor=seller, source="test") as uow:
        deal = opportunities.create(uow, {"name": "Big one", "customer_id": acme.id})
        opportunities.move(uow, deal.id, {"stage_id": _stage(crm, "Proposal").id})
        opportunities.move(uow, deal.id, {"stage_id": won.id})
        assert deal.status == "won" and deal.closed_at is not None
        stays = opportunities.stage_history(uow, deal.id)
        assert len(stays) == 3 and all(s.left_at for s in stays[:2]) and stays[2].left_at is None
        actions = list(uow.session.scalars(
            select(AuditEntry.action).where(AuditEntry.entity == "opportunity")
            .order_by(AuditEntry.id)))
        assert actions == ["created", "stage_changed", "stage_changed"]


def test_bad_input_names_the_fields_and_nothing_is_written(crm, seller, acme):
    with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=seller) as uow:
        opportunities.create(uow, {"name": "", "customer_id": 999999, "amount": "-1",
                                   "currency": "euro", "probability": 101})
    assert set(refused.value.messages) == {"name", "amount", "currency", "probability"}
    with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=seller) as uow:
        opportunities.create(uow, {"name": "X", "customer_id": 999999,
                                   "stage_id": _stage(crm, "Won").id + 1000})
    assert "stage_id" in refused.value.messages
    with crm.session_factory() as session:
        assert session.scalar(select(StageStay.id)) is None


def test_a_stale_version_is_a_conflict(crm, seller, acme):
    with crm.unit_of_work(actor=seller, source="test") as uow:
        deal = opportunities.create(uow, {"name": "Race", "customer_id": acme.id})
        opportunities.update(uow, deal.id, {"amount": "5"}, expected_version=1)
        with pytest.raises(ConflictError):
            opportunities.update(uow, deal.id, {"amount": "6"}, expected_version=1)


def test_a_partial_update_fills_the_defaults_of_the_lines_it_replaces(crm, seller, acme):
    with crm.unit_of_work(actor=seller, source="test") as uow:
        deal = opportunities.create(uow, {"name": "Lines", "customer_id": acme.id})
        opportunities.update(uow, deal.id, {"lines": [{"description": "Setup",
                                                       "unit_price": "200"}]})
        assert [(line.product_id, line.quantity, line.total) for line in deal.lines] == [
            (None, Decimal(1), Decimal("200.00"))
        ]
        assert deal.name == "Lines"  # what was not sent stays
