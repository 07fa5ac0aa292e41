"""Marshmallow schemas: what staff (API) and customers (the answer page) may send."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

#: The largest id a reference may name (ids are 32-bit integers).
MAX_ID = 2**31 - 1
#: The longest comment kept.
MAX_COMMENT = 2000


class AnswerSchema(Schema):
    """A customer's answer: the score on the 0-10 scale and an optional comment."""

    score = fields.Integer(
        required=True,
        strict=False,  # the answer page posts text
        validate=validate.Range(min=0, max=10, error="Choose a score from 0 to 10."),
        error_messages={"required": "Choose a score from 0 to 10.",
                        "invalid": "Choose a score from 0 to 10.",
                        "null": "Choose a score from 0 to 10."},
    )
    comment = fields.String(
        load_default="",
        validate=validate.Length(max=MAX_COMMENT,
                                 error=f"Keep the comment under {MAX_COMMENT} characters."),
    )


class SurveySchema(Schema):
    """A survey as the API shows it; staff create one for an interaction."""

    id = fields.Integer(dump_only=True)
    interaction_id = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=MAX_ID)
    )
    customer_id = fields.Integer(dump_only=True)
    #: The link to send to the customer (the token is its secret part).
    token = fields.String(dump_only=True)
    sent_at = fields.AwareDateTime(dump_only=True)
    answered_at = fields.AwareDateTime(dump_only=True)
    score = fields.Integer(dump_only=True)
    comment = fields.String(dump_only=True)
    archived = fields.Boolean(dump_only=True)
    version = fields.Integer(dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)
