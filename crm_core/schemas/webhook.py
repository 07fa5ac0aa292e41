"""What a webhook subscription accepts: an http(s) URL, event type patterns, a secret."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, validate

from crm_core.i18n import N_
from crm_core.schemas.fieldtypes import Text

MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 500
MAX_PATTERNS = 50
MAX_PATTERN_LENGTH = 120
MIN_SECRET_LENGTH = 24
MAX_SECRET_LENGTH = 200

#: ``*``, ``<entity>.*`` or ``<entity>.<action>``: lowercase letters, digits and ``_``.
EVENT_PATTERN = re.compile(r"^(\*|[a-z0-9_]+\.(\*|[a-z0-9_]+))$")
_PATTERN_HELP = "Use *, <entity>.* or <entity>.<action>: lowercase letters, digits and _."
#: A secret is printable ASCII without spaces, as receivers keep it in configuration.
_SECRET = re.compile(r"^[\x21-\x7e]+$")


class WebhookUrl(fields.String):
    """An absolute ``http`` or ``https`` URL with a host; no spaces, at most 2000 characters."""

    default_error_messages = {
        "invalid": "Give an absolute http:// or https:// URL with a host, without spaces.",
        "too_long": f"Use at most {MAX_URL_LENGTH} characters.",
    }
    _url = validate.URL(relative=False, require_tld=False, schemes={"http", "https"})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "metadata",
            {
                "description": "Where deliveries are POSTed: an absolute http(s) URL.",
                "format": "uri",
                "maxLength": MAX_URL_LENGTH,
            },
        )
        super().__init__(**kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if len(text) > MAX_URL_LENGTH:
            raise self.make_error("too_long")
        if any(char.isspace() or not char.isprintable() for char in text):
            raise self.make_error("invalid")
        try:
            self._url(text)
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except (ValueError, ValidationError) as exc:
            raise self.make_error("invalid") from exc
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise self.make_error("invalid")
        return text


class EventTypes(fields.List):
    """1 to 50 event type patterns; duplicates are dropped, the order is kept."""

    def __init__(self, **kwargs: Any) -> None:
        pattern = fields.String(
            validate=[
                validate.Length(max=MAX_PATTERN_LENGTH),
                validate.Regexp(EVENT_PATTERN, error=_PATTERN_HELP),
            ]
        )
        kwargs.setdefault(
            "validate",
            validate.Length(
                min=1,
                max=MAX_PATTERNS,
                error=f"Give 1 to {MAX_PATTERNS} event types.",
            ),
        )
        kwargs.setdefault(
            "metadata",
            {
                "description": "Event types to receive: `contact.created`, `contact.*` "
                "(every action on contacts) or `*` (everything)."
            },
        )
        super().__init__(pattern, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        if isinstance(value, list | tuple):
            value = [item.strip() if isinstance(item, str) else item for item in value]
        items = super()._deserialize(value, attr, data, **kwargs)
        return [*dict.fromkeys(items)]


class WebhookPatchSchema(Schema):
    """A change to a webhook: only the fields sent change (the secret is rotated apart)."""

    url = WebhookUrl()
    description = Text(max_length=MAX_DESCRIPTION_LENGTH)
    event_types = EventTypes()


class WebhookSchema(WebhookPatchSchema):
    """A new webhook: where to send which events, and optionally its signing secret."""

    url = WebhookUrl(required=True)
    description = Text(max_length=MAX_DESCRIPTION_LENGTH, load_default="")
    event_types = EventTypes(required=True)
    secret = fields.String(
        load_only=True,
        validate=[
            validate.Length(
                min=MIN_SECRET_LENGTH,
                max=MAX_SECRET_LENGTH,
                error=f"Use {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters.",
            ),
            validate.Regexp(_SECRET, error=N_("Use printable ASCII characters without spaces.")),
        ],
        metadata={
            "description": "The signing secret (at least 24 characters); without it one is "
            "generated. Shown once, in the answer."
        },
    )
