"""Marshmallow schemas of crm-sales: what the API, the UI and imports may write.

Every write validates through these (``crm_core.schemas.load_or_refuse``); the API dumps
with the same classes, so input and output name fields alike.
"""

from __future__ import annotations

from decimal import Decimal

from marshmallow import Schema, fields, validate

from crm_core.i18n import N_
from crm_core.ids import MAX_ID
from crm_core.schemas.fieldtypes import RequiredText, Text
from crm_sales.models import ActivityKind, ContactRole, Outcome

_CURRENCY = validate.Regexp(
    r"^[A-Z]{3}$", error=N_("Use a three-letter ISO currency code, e.g. EUR.")
)
_PERCENT = validate.Range(min=0, max=100, error=N_("Use a number from 0 to 100."))
_NOT_NEGATIVE = validate.Range(min=0, error=N_("Must not be negative."))
_MONEY_LIMIT = Decimal("99999999999999")


def _record_id(**kwargs: object) -> fields.Integer:
    """A reference to a row: a whole number an id column can hold (else "No such record")."""
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=MAX_ID, error=N_("No such record.")),
        **kwargs,  # type: ignore[arg-type]
    )


def _money(**kwargs: object) -> fields.Decimal:
    """An amount: exact, two decimals, not negative, as a JSON string."""
    return fields.Decimal(
        places=2,
        as_string=True,
        validate=[_NOT_NEGATIVE, validate.Range(max=_MONEY_LIMIT, error=N_("Too large."))],
        **kwargs,  # type: ignore[arg-type]
    )


class DealContactSchema(Schema):
    """A contact of a deal and their role in it."""

    contact_id = _record_id(required=True)
    role = fields.String(
        load_default=ContactRole.OTHER.value,
        validate=validate.OneOf([role.value for role in ContactRole]),
    )


class LineSchema(Schema):
    """A product line: quantity, unit price, discount (the total is computed)."""

    product_id = _record_id(allow_none=True, load_default=None)
    description = Text(max_length=300, load_default="")
    quantity = fields.Decimal(
        places=3, as_string=True, load_default=Decimal(1),
        validate=[_NOT_NEGATIVE, validate.Range(max=Decimal("99999999999"))],
    )
    unit_price = _money(load_default=Decimal(0))
    discount_percent = fields.Decimal(
        places=2, as_string=True, load_default=Decimal(0), validate=_PERCENT
    )
    total = fields.Decimal(places=2, as_string=True, dump_only=True)


class OpportunitySchema(Schema):
    """A deal. ``pipeline_id`` defaults to the default pipeline, ``stage_id`` to its first
    stage, ``owner_id`` to the user creating it, ``currency`` to EUR."""

    id = fields.Integer(dump_only=True)
    name = RequiredText(max_length=200)
    customer_id = _record_id(required=True)
    pipeline_id = _record_id()
    stage_id = _record_id()
    status = fields.String(dump_only=True)
    owner_id = _record_id(allow_none=True)
    amount = _money(load_default=Decimal(0))
    currency = fields.String(load_default="EUR", validate=_CURRENCY)
    expected_close = fields.Date(allow_none=True, load_default=None)
    probability = fields.Integer(allow_none=True, strict=True, load_default=None,
                                 validate=_PERCENT)
    effective_probability = fields.Integer(dump_only=True)
    committed = fields.Boolean(load_default=False)
    source = Text(max_length=80, load_default="")
    next_step = Text(max_length=300, load_default="")
    lost_reason_id = _record_id(allow_none=True, load_default=None)
    contacts = fields.List(fields.Nested(DealContactSchema), load_default=list)
    lines = fields.List(fields.Nested(LineSchema), load_default=list)
    stage_entered_at = fields.AwareDateTime(dump_only=True)
    closed_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    archived = fields.Boolean(dump_only=True)
    version = fields.Integer(dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)


class MoveSchema(Schema):
    """Moving a deal to another stage (a lost stage may say why)."""

    stage_id = _record_id(required=True)
    lost_reason_id = _record_id(allow_none=True, load_default=None)


class StageSchema(Schema):
    """A stage of a pipeline."""

    id = fields.Integer(dump_only=True)
    name = RequiredText(max_length=120)
    probability = fields.Integer(required=True, strict=True, validate=_PERCENT)
    outcome = fields.String(
        load_default=Outcome.OPEN.value, validate=validate.OneOf([o.value for o in Outcome])
    )
    position = fields.Integer(dump_only=True)


class PipelineSchema(Schema):
    """A pipeline and its stages in order: at least one open stage, one won, one lost."""

    id = fields.Integer(dump_only=True)
    name = RequiredText(max_length=120)
    is_default = fields.Boolean(load_default=False)
    stages = fields.List(fields.Nested(StageSchema), required=True,
                         validate=validate.Length(min=3, max=30))


class ActivitySchema(Schema):
    """A call, meeting or to-do, due at a time, assigned to a user."""

    id = fields.Integer(dump_only=True)
    kind = fields.String(load_default=ActivityKind.TODO.value,
                         validate=validate.OneOf([k.value for k in ActivityKind]))
    subject = RequiredText(max_length=300)
    notes = Text(max_length=10000, load_default="")
    due_at = fields.AwareDateTime(required=True)
    reminder_at = fields.AwareDateTime(allow_none=True, load_default=None)
    assignee_id = _record_id(allow_none=True)
    customer_id = _record_id(allow_none=True, load_default=None)
    contact_id = _record_id(allow_none=True, load_default=None)
    opportunity_id = _record_id(allow_none=True, load_default=None)
    done_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    interaction_id = fields.Integer(dump_only=True, allow_none=True)
    created_at = fields.AwareDateTime(dump_only=True)


class ProductSchema(Schema):
    """A catalogue item."""

    id = fields.Integer(dump_only=True)
    code = RequiredText(max_length=40)
    name = RequiredText(max_length=200)
    unit_price = _money(required=True)
    currency = fields.String(load_default="EUR", validate=_CURRENCY)
    active = fields.Boolean(load_default=True)


class QuotaSchema(Schema):
    """A target: a user's or a team's, for a month or a quarter starting on ``starts_on``."""

    id = fields.Integer(dump_only=True)
    owner_id = _record_id(allow_none=True, load_default=None)
    team_id = _record_id(allow_none=True, load_default=None)
    period = fields.String(load_default="month", validate=validate.OneOf(["month", "quarter"]))
    starts_on = fields.Date(required=True)
    amount = _money(required=True)
    currency = fields.String(load_default="EUR", validate=_CURRENCY)


class QuotaChangeSchema(Schema):
    """A change to a quota: its amount or currency (whose and which period it is stay)."""

    amount = _money()
    currency = fields.String(validate=_CURRENCY)
