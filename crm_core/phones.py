"""Phone numbers in E.164 form (``+4930123456``), for duplicate detection and search.

People write the same number in many ways (``030 123456``, ``+49 (0)30 12 34 56``,
``0049-30-123456``); E.164 is one spelling per number. A number without a country
code needs a region to be read: the customer's ``country``, else the
``default_phone_region`` setting. Without either, such a number has no E.164 form
(``None``) rather than a guessed one.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

#: Regions ``phonenumbers`` can read national numbers for (ISO 3166-1 alpha-2, upper case).
SUPPORTED_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)


def to_e164(number: str | None, default_region: str | None = None) -> str | None:
    """``number`` in E.164 form, or ``None`` when it cannot be read as a phone number.

    ``default_region`` (e.g. ``"DE"``, any case) is used for numbers written without
    a country code; a number starting with ``+`` or an international prefix needs
    none. A number is accepted when its length is possible for its country (not
    checked against the numbering plan's assigned ranges, which change over time).
    An extension (``x12``) is not part of E.164 and is dropped.
    """
    if number is None:
        return None
    text = number.strip()
    if not text:
        return None
    region = default_region.strip().upper() if default_region else None
    if region not in SUPPORTED_REGIONS:
        region = None
    try:
        parsed = phonenumbers.parse(text, region)
    except NumberParseException:
        return None
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        # Too short, too long, or dialable only locally (without an area code).
        return None
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def region_for(country: str | None, default_region: str | None) -> str | None:
    """The region to read a record's national numbers with: its country, else the default."""
    return country or default_region


def looks_like_phone_number(text: str) -> bool:
    """Whether ``text`` is written like a phone number: at least 3 digits, phone punctuation."""
    digits = sum(char.isdigit() for char in text)
    return digits >= 3 and all(char.isdigit() or char in " +()-./" for char in text)
