"""What the API sends besides records: audit entries, timeline entries, search hits, duplicates.

Records are dumped with their entity's schema (see :class:`ApiResource`); these schemas
shape everything else, and the OpenAPI document describes them from the same classes.
"""

from __future__ import annotations

from marshmallow import Schema, fields


class AuditEntryOut(Schema):
    """One change: who, when, through which channel, which fields from what to what."""

    id = fields.Integer(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    actor_id = fields.Integer(required=True, allow_none=True)
    source = fields.String(
        required=True, metadata={"description": "`api`, `ui`, `import`, `cli` or a plugin's name."}
    )
    entity = fields.String(required=True)
    entity_id = fields.String(required=True)
    action = fields.String(required=True)
    changes = fields.Dict(
        required=True,
        metadata={"description": "Each changed field mapped to `[old, new]`."},
    )


class HistoryEntryOut(Schema):
    """One change of a record: who made it, when, through which channel, and what changed."""

    id = fields.Integer(required=True, metadata={"description": "The audit entry's id."})
    occurred_at = fields.AwareDateTime(required=True)
    action = fields.String(
        required=True,
        metadata={"description": "`created`, `updated`, `archived`, `merged`, `merge_undone`..."},
    )
    source = fields.String(
        required=True, metadata={"description": "`api`, `ui`, `import`, `cli` or a plugin's name."}
    )
    actor_id = fields.Integer(required=True, allow_none=True)
    actor_email = fields.String(required=True, allow_none=True)
    changes = fields.Dict(
        required=True,
        metadata={"description": "Each changed field mapped to `[old, new]`."},
    )


class TimelineEntryOut(Schema):
    """One entry of a customer's timeline: an interaction, or what a plugin contributes."""

    type = fields.String(
        required=True, metadata={"description": "`interaction`, or a plugin's type (`sales.deal`)."}
    )
    id = fields.Raw(
        required=True,
        metadata={
            "description": "Unique within `type` (an integer or a string).",
            "type": ["integer", "string"],
        },
    )
    occurred_at = fields.AwareDateTime(required=True)
    title = fields.String(required=True)
    summary = fields.String(required=True)
    channel = fields.String(required=True, allow_none=True)
    plugin = fields.String(required=True, metadata={"description": "Who contributed the entry."})
    url = fields.String(required=True, allow_none=True)
    extra = fields.Dict(required=True)


class SearchHitOut(Schema):
    """One hit of the global search."""

    entity = fields.String(required=True, metadata={"description": "`customer`, `contact`..."})
    id = fields.Raw(required=True, metadata={"type": ["integer", "string"]})
    title = fields.String(required=True)
    subtitle = fields.String(required=True)
    score = fields.Float(
        required=True,
        metadata={
            "description": "1.0 an exact match, 0.9 a name starting with the query, "
            "0.8 every word starting a word of the name, 0.7 the same in other fields, "
            "lower: typo-tolerant matches."
        },
    )
