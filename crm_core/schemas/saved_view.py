"""What a saved view of a UI list accepts: a name, the list, and its query string."""

from __future__ import annotations

from marshmallow import Schema, validate

from crm_core.schemas.fieldtypes import RequiredText, Text

#: The lists that have saved views.
ENTITIES = ("customer", "contact")


class SavedViewSchema(Schema):
    """A saved view: ``name`` (unique per user and list), ``entity`` and ``query``."""

    name = RequiredText(max_length=80)
    entity = RequiredText(max_length=40, validate=[validate.OneOf(ENTITIES)])
    query = Text(max_length=1000, load_default="")
