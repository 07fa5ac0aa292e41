"""A test-only "public" function deprecated with crm_core.deprecations.deprecated."""

from __future__ import annotations

from crm_core.deprecations import Deprecation, deprecated

OLD_DOUBLE = Deprecation(
    "fakeplugins.old_api.old_double", since="1.1", removed_in="2.0",
    use_instead="fakeplugins.old_api.double",
)


def double(value: int) -> int:
    """Twice ``value``."""
    return 2 * value


@deprecated(OLD_DOUBLE)
def old_double(value: int) -> int:
    """Twice ``value``, the old way."""
    return double(value)
