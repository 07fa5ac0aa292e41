"""Test-only hookspecs, one of them deprecated through crm_core.deprecations."""

from __future__ import annotations

import sys

from crm_core import hookspec
from crm_core.deprecations import Deprecation, deprecate_hookspecs

OLD_PING = Deprecation(
    "crm_fake_old_ping", since="1.1", removed_in="2.0", use_instead="crm_fake_new_ping"
)
LATE_PING = Deprecation(
    "crm_fake_late_ping", since="1.1", removed_in="3.0", use_instead="crm_fake_new_ping"
)


@hookspec(firstresult=True)
def crm_fake_old_ping(value: int) -> int:
    """Answer a ping (deprecated: removed in API 2.0)."""


@hookspec
def crm_fake_late_ping(value: int) -> int:
    """Answer a ping (deprecated: removed only in API 3.0)."""


@hookspec
def crm_fake_new_ping(value: int) -> int:
    """Answer a ping, the current way."""


deprecate_hookspecs(sys.modules[__name__], hookspec, [OLD_PING, LATE_PING])
