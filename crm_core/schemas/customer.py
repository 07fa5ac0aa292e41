"""The customer schema: what the API, the UI, the CLI and importers send and receive."""

from __future__ import annotations

from marshmallow import fields, validate

from crm_core.models import CustomerKind, LifecycleStage
from crm_core.schemas.base import RecordSchema
from crm_core.schemas.fieldtypes import (
    CountryCode,
    EmailAddress,
    PhoneNumber,
    RequiredText,
    Tags,
    Text,
    Website,
)


class CustomerSchema(RecordSchema):
    """A company or a person. ``attributes`` is replaced per deployment (custom attributes)."""

    kind = fields.String(
        load_default=CustomerKind.COMPANY.value, validate=validate.OneOf(list(CustomerKind))
    )
    name = RequiredText(max_length=300)
    email = EmailAddress(allow_none=True)
    external_id = Text(max_length=200, allow_none=True)
    phone = PhoneNumber(allow_none=True)
    website = Website(allow_none=True)
    street = Text(max_length=300, allow_none=True)
    postal_code = Text(max_length=20, allow_none=True)
    city = Text(max_length=120, allow_none=True)
    region = Text(max_length=120, allow_none=True)
    country = CountryCode(allow_none=True)
    industry = Text(max_length=120, allow_none=True)
    lifecycle_stage = fields.String(
        load_default=LifecycleStage.LEAD.value, validate=validate.OneOf(list(LifecycleStage))
    )
    owner_id = fields.Integer(allow_none=True, strict=False)
    tags = Tags(load_default=list)
    attributes = fields.Dict(load_default=dict)
