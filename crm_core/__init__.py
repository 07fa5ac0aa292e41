"""crm-core: a small, pluggable CRM framework.

This module is the public API. Plugins import from here (and from the modules
it names: ``crm_core.models``, ``crm_core.services``, ``crm_core.extensions``,
``crm_core.testing``), never from other internals.
"""

from crm_core.db import Amount, Base, Currency, TimestampMixin, UTCDateTime, VersionedMixin, utcnow
from crm_core.errors import (
    ConfigError,
    ConflictError,
    CRMError,
    HookError,
    NotFoundError,
    PermissionDenied,
    PluginError,
    ValidationError,
)
from crm_core.hookspecs import hookimpl, hookspec
from crm_core.plugins import PluginManifest
from crm_core.runtime import CRM
from crm_core.services.unit_of_work import RecordChange, UnitOfWork
from crm_core.version import API_VERSION, __version__
from crm_core.web.app import create_app

__all__ = [
    "API_VERSION",
    "CRM",
    "Amount",
    "Base",
    "CRMError",
    "ConfigError",
    "ConflictError",
    "Currency",
    "HookError",
    "NotFoundError",
    "PermissionDenied",
    "PluginError",
    "PluginManifest",
    "RecordChange",
    "TimestampMixin",
    "UTCDateTime",
    "UnitOfWork",
    "ValidationError",
    "VersionedMixin",
    "__version__",
    "create_app",
    "hookimpl",
    "hookspec",
    "utcnow",
]
