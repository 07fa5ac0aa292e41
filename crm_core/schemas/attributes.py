"""Custom attributes: a schema built from the declared attributes of one entity."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Mapping
from typing import Any

from marshmallow import Schema, fields, post_load, validate

from crm_core.extensions import CustomAttribute
from crm_core.schemas.fieldtypes import Text


class _StoredDate(fields.Date):
    """A date attribute: loads a date, and dumps the ISO text it is stored as."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            return value  # stored as ISO text by _AttributesBase.to_json
        return super()._serialize(value, attr, obj, **kwargs)


class _StoredDecimal(fields.Decimal):
    """A decimal attribute: exact, sent and stored as text (JSON has no decimals)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(as_string=True, **kwargs)


_FIELD_TYPES: dict[str, type[fields.Field]] = {
    "string": Text,
    "text": Text,
    "integer": fields.Integer,
    "decimal": _StoredDecimal,
    "boolean": fields.Boolean,
    "date": _StoredDate,
    "choice": Text,
}


def attribute_field(attribute: CustomAttribute) -> fields.Field:
    """The marshmallow field that validates one custom attribute."""
    kwargs: dict[str, Any] = {"required": attribute.required, "allow_none": not attribute.required}
    if attribute.type == "string":
        kwargs["max_length"] = 500
    if attribute.type == "choice":
        kwargs["validate"] = [validate.OneOf(attribute.choices)]
    return _FIELD_TYPES[attribute.type](**kwargs)


class _AttributesBase(Schema):
    @post_load
    def to_json(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        """Store dates and decimals as JSON-friendly strings."""
        return {key: _jsonable(value) for key, value in data.items()}


def attributes_schema(entity: str, attributes: Iterable[CustomAttribute]) -> type[Schema]:
    """A schema for ``entity``'s ``attributes`` object; unknown keys are refused."""
    declared: Mapping[str, fields.Field] = {
        a.name: attribute_field(a) for a in attributes if a.entity == entity
    }
    return type(f"{entity.capitalize()}AttributesSchema", (_AttributesBase,), dict(declared))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value
