"""The interaction schema."""

from __future__ import annotations

from marshmallow import fields, validate

from crm_core.models import Direction
from crm_core.schemas.base import RecordSchema
from crm_core.schemas.fieldtypes import RequiredText, Text


class InteractionSchema(RecordSchema):
    """One touchpoint; ``channel`` is checked against the registered channels by the service."""

    customer_id = fields.Integer(required=True)
    contact_id = fields.Integer(allow_none=True)
    channel = RequiredText(max_length=40)
    direction = fields.String(allow_none=True, validate=validate.OneOf(list(Direction)))
    occurred_at = fields.AwareDateTime(
        required=True, error_messages={"invalid_awareness": "Give a time zone, e.g. +01:00 or Z."}
    )
    subject = Text(max_length=500, load_default="")
    body = fields.String(load_default="")
    user_id = fields.Integer(allow_none=True)
    source = Text(max_length=80, allow_none=True)
    external_ref = Text(max_length=200, allow_none=True)
