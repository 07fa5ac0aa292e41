"""What every core record's schema shows besides its own fields."""

from __future__ import annotations

from marshmallow import Schema, fields


class RecordSchema(Schema):
    """Identity, state and bookkeeping fields: written by the services, never by input."""

    id = fields.Integer(dump_only=True)
    archived = fields.Boolean(dump_only=True)
    merged_into_id = fields.Integer(dump_only=True)
    version = fields.Integer(dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)
