"""The contact schema, with labelled emails and phone numbers."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validates_schema

from crm_core.schemas.base import RecordSchema
from crm_core.schemas.fieldtypes import EmailAddress, PhoneNumber, Text


class ContactEmailSchema(Schema):
    """One labelled email address."""

    label = Text(max_length=40, load_default="work")
    email = EmailAddress(required=True)


class ContactPhoneSchema(Schema):
    """One labelled phone number."""

    label = Text(max_length=40, load_default="work")
    number = PhoneNumber(required=True)


class ContactSchema(RecordSchema):
    """A person, optionally at a customer; needs a first or a last name."""

    customer_id = fields.Integer(allow_none=True)
    first_name = Text(max_length=120, load_default="")
    last_name = Text(max_length=120, load_default="")
    job_title = Text(max_length=200, allow_none=True)
    external_id = Text(max_length=200, allow_none=True)
    owner_id = fields.Integer(allow_none=True)
    emails = fields.List(fields.Nested(ContactEmailSchema), load_default=list)
    phones = fields.List(fields.Nested(ContactPhoneSchema), load_default=list)
    consent_email = fields.Boolean(load_default=False)
    consent_email_at = fields.AwareDateTime(dump_only=True)
    consent_phone = fields.Boolean(load_default=False)
    consent_phone_at = fields.AwareDateTime(dump_only=True)
    attributes = fields.Dict(load_default=dict)

    @validates_schema(skip_on_field_errors=False)
    def needs_a_name(self, data: dict[str, Any], partial: Any = None, **_: Any) -> None:
        """A contact without first and last name cannot be told apart from others."""
        if partial and "first_name" not in data and "last_name" not in data:
            return
        if not data.get("first_name") and not data.get("last_name"):
            raise ValidationError("Give a first or a last name.", "last_name")
