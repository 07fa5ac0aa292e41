"""Marshmallow schemas of the core entities, extended per CRM by custom attributes and plugins.

Use :func:`schema_for` (or ``CRM.schema(entity)``) rather than the base classes: it
adds the deployment's custom attributes and the fields plugins contribute through
``crm_schema_fields``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from marshmallow import Schema, fields
from marshmallow import ValidationError as SchemaError

from crm_core.errors import PluginError, ValidationError
from crm_core.i18n import N_
from crm_core.schemas.attributes import attributes_schema
from crm_core.schemas.contact import ContactEmailSchema, ContactPhoneSchema, ContactSchema
from crm_core.schemas.customer import CustomerSchema
from crm_core.schemas.interaction import InteractionSchema

if TYPE_CHECKING:
    from crm_core.runtime import CRM

BASE_SCHEMAS: dict[str, type[Schema]] = {
    "customer": CustomerSchema,
    "contact": ContactSchema,
    "interaction": InteractionSchema,
}


def schema_for(crm: CRM, entity: str) -> type[Schema]:
    """Build the schema class of ``entity``: base fields, custom attributes, plugin fields."""
    base = BASE_SCHEMAS[entity]
    extra: dict[str, fields.Field] = {}
    if "attributes" in base._declared_fields:
        nested = attributes_schema(entity, crm.registry.custom_attributes.values())
        extra["attributes"] = fields.Nested(nested, load_default=dict)
    for plugin_name, plugin_fields in crm.call_each("crm_schema_fields", entity=entity):
        for name, field in plugin_fields.items():
            if name in base._declared_fields or name in extra:
                raise PluginError(plugin_name, f"adds field {name!r} to {entity}, which has it")
            extra[name] = field
    return type(base.__name__, (base,), extra)


def load_or_refuse(
    schema: Schema, data: Any, *, partial: bool | Sequence[str] = False
) -> dict[str, Any]:
    """``schema.load(data)``; refused input becomes a :class:`~crm_core.ValidationError`
    with marshmallow's messages by field (what the API answers as a 422).

    ``partial`` as marshmallow takes it: ``True`` ignores every missing field, nested
    ones too; a sequence of field names only those (a partial update whose nested rows
    must still be whole: ``partial=tuple(schema.fields)``)."""
    if not isinstance(data, Mapping):
        raise ValidationError({"_schema": [N_("Expected an object.")]})
    try:
        loaded: dict[str, Any] = schema.load(data, partial=partial)
    except SchemaError as exc:
        raise ValidationError(exc.messages) from exc  # type: ignore[arg-type]
    return loaded


__all__ = [
    "BASE_SCHEMAS",
    "ContactEmailSchema",
    "ContactPhoneSchema",
    "ContactSchema",
    "CustomerSchema",
    "InteractionSchema",
    "load_or_refuse",
    "schema_for",
]
