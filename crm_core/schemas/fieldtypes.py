"""Marshmallow fields tuned for CRM input: spreadsheets, forms and APIs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate

from crm_core.i18n import N_


class Text(fields.String):
    """A string that is stripped; an empty value becomes ``None`` when the field allows it.

    Spreadsheets and HTML forms send ``""`` for "nothing"; storing ``None`` keeps
    filters such as "has no email" honest.
    """

    def __init__(self, *, max_length: int | None = None, **kwargs: Any) -> None:
        validators = list(kwargs.pop("validate", None) or [])
        if max_length is not None:
            validators.append(validate.Length(max=max_length))
        super().__init__(validate=validators, **kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text and self.allow_none:
            return None
        return text

    def _validate(self, value: Any) -> None:
        # An empty value turned into None has no length or pattern to check.
        if value is not None:
            super()._validate(value)


class RequiredText(Text):
    """A stripped string that must not be empty."""

    def __init__(self, *, max_length: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("required", True)
        kwargs["validate"] = [
            validate.Length(min=1, error=N_("Must not be empty.")),
            *(kwargs.get("validate") or []),
        ]
        super().__init__(max_length=max_length, **kwargs)


class EmailAddress(Text):
    """An email address, stored in lower case so lookups and duplicates match."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["validate"] = [validate.Email(error=N_("Not a valid email address."))]
        super().__init__(max_length=254, **kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        return text.lower() if text else text


_PHONE = re.compile(r"^\+?[0-9 ()./\-]{3,40}(\s*(x|ext\.?)\s*[0-9]{1,6})?$", re.IGNORECASE)


class PhoneNumber(Text):
    """A phone number as people write it: digits, spaces, ``+ ( ) - . /`` and an extension."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["validate"] = [
            validate.Regexp(_PHONE, error=N_("Not a valid phone number.")),
        ]
        super().__init__(max_length=50, **kwargs)


class Website(Text):
    """A web address; ``www.acme.com`` is accepted and stored as ``https://www.acme.com``."""

    _url = validate.URL(schemes={"http", "https"}, error=N_("Not a valid web address."))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=500, **kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text:
            return text
        if "://" not in text:
            text = "https://" + text
        try:
            self._url(text)
        except ValidationError as exc:
            raise self.make_error("invalid") from exc
        return text

    default_error_messages = {"invalid": "Not a valid web address."}


class CountryCode(Text):
    """An ISO 3166-1 alpha-2 country code, upper-cased (``de`` -> ``DE``)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["validate"] = [
            validate.Regexp(r"^[A-Z]{2}$", error=N_("Use a two-letter ISO country code, e.g. DE."))
        ]
        super().__init__(**kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        return text.upper() if text else text


class Tags(fields.List):
    """A list of tags: stripped, empty ones dropped, duplicates removed, sorted.

    A comma-separated string (``"vip, partner"``) is accepted too.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(Text(max_length=80, allow_none=False), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        items = super()._deserialize(value, attr, data, **kwargs)
        return sorted({item for item in items if item})
