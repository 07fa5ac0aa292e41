"""The export ``opportunities``: the deals a user sees, each reference named after its id."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import fields as ma_fields
from sqlalchemy import ColumnElement, Numeric, Select, func, select, type_coerce
from sqlalchemy.orm import aliased
from sqlalchemy.types import TypeDecorator

from crm_core.extensions import Exporter
from crm_core.models import Customer, User
from crm_sales.models import LostReason, Opportunity, Pipeline, Stage
from crm_sales.schemas import OpportunitySchema
from crm_sales.services import opportunities

#: The name of the export (and of the import).
NAME = "opportunities"

#: The owner of a deal, aliased: visibility filters select from ``User`` themselves.
_Owner = aliased(User, name="owner")
#: What names a reference, written after its id: id field -> (column name, expression).
_NAMED_BY: dict[str, tuple[str, Any]] = {
    "customer_id": ("customer", Customer.name),
    "pipeline_id": ("pipeline", Pipeline.name),
    "stage_id": ("stage", Stage.name),
    "owner_id": ("owner_email", _Owner.email),
    "lost_reason_id": ("lost_reason", LostReason.name),
}


class _Places(TypeDecorator[Decimal]):
    """A number read as a :class:`~decimal.Decimal` rounded to ``exponent`` (``0.01``)."""

    impl = Numeric(18, 4, asdecimal=True)
    cache_ok = True

    def __init__(self, exponent: Decimal) -> None:
        super().__init__()
        self.exponent = exponent

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        """The stored value rounded to the field's decimals."""
        return None if value is None else Decimal(value).quantize(self.exponent)


def export_columns() -> list[ColumnElement[Any]]:
    """The export's columns: the schema's scalar fields, each reference's name after its id."""
    table = Opportunity.__table__
    columns: list[ColumnElement[Any]] = []
    for name, schema_field in OpportunitySchema().fields.items():
        if isinstance(schema_field, ma_fields.List | ma_fields.Nested):
            continue
        if name == "effective_probability":
            columns.append(func.coalesce(Opportunity.probability, Stage.probability).label(name))
        elif name in table.c and isinstance(schema_field, ma_fields.Decimal):
            # As the API shows it: amounts with two decimals (stored with four).
            exponent = schema_field.places or Decimal("0.0001")  # marshmallow's quantizer
            columns.append(type_coerce(table.c[name], _Places(exponent)).label(name))
        elif name in table.c:
            columns.append(table.c[name].label(name))
        else:
            continue
        if name in _NAMED_BY:
            label, expression = _NAMED_BY[name]
            columns.append(expression.label(label))
    return columns


def export_query(actor: Any, include_archived: bool) -> Select[Any]:
    """The deals ``actor`` sees (``None``: all), oldest first, with the export's columns."""
    statement = (
        select(*export_columns())
        .select_from(Opportunity)
        .join(Customer, Customer.id == Opportunity.customer_id)
        .join(Pipeline, Pipeline.id == Opportunity.pipeline_id)
        .join(Stage, Stage.id == Opportunity.stage_id)
        .outerjoin(_Owner, _Owner.id == Opportunity.owner_id)
        .outerjoin(LostReason, LostReason.id == Opportunity.lost_reason_id)
        .where(opportunities.visible_deals(actor))
    )
    if not include_archived:
        statement = statement.where(Opportunity.archived.is_(False))
    return statement.order_by(Opportunity.id)


def exporters() -> list[Exporter]:
    """``crm export opportunities``: the deals the user sees (``sales.deal.view``)."""
    return [
        Exporter(
            NAME,
            opportunities.VIEW,
            query=export_query,
            description="Every deal the user may see, with its customer, pipeline, stage and "
            "owner by name.",
        )
    ]
