"""Exceptions of crm-core's public API.

Every error a caller can act on is a subclass of :class:`CRMError`. Validation
errors carry field-level messages as data, so the API, the UI and the importers
can all report them without parsing strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class CRMError(Exception):
    """Base class of every error crm-core raises on purpose."""


class ConfigError(CRMError):
    """A setting is missing or wrong; the message names the setting."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message


class ValidationError(CRMError):
    """Input was refused; ``messages`` maps each field to its messages.

    For a batch, ``messages`` maps each row's index to that row's field messages.
    The special field ``_schema`` holds messages that concern the record as a whole.
    """

    def __init__(self, messages: Mapping[Any, Any]) -> None:
        super().__init__(_summarise(messages))
        self.messages: dict[Any, Any] = dict(messages)


class NotFoundError(CRMError):
    """The record does not exist (or is not visible to the caller)."""

    def __init__(self, entity: str, ident: object) -> None:
        super().__init__(f"{entity} {ident!r} not found")
        self.entity = entity
        self.ident = ident


class ConflictError(CRMError):
    """A write was based on a stale version of the record."""

    def __init__(self, entity: str, ident: object, expected: int, actual: int | None) -> None:
        current = f"the current version is {actual}" if actual is not None else "it has moved on"
        super().__init__(
            f"{entity} {ident!r} was changed by someone else: "
            f"you edited version {expected}, {current}"
        )
        self.entity = entity
        self.ident = ident
        self.expected_version = expected
        self.current_version = actual


class PermissionDenied(CRMError):
    """The acting user lacks the permission the operation needs."""


class PluginError(CRMError):
    """A plugin could not be loaded or broke a rule of the plugin system."""

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(f"plugin {plugin!r}: {message}")
        self.plugin = plugin
        self.message = message


class HookError(CRMError):
    """A plugin's hook implementation raised; the write it was part of was rolled back."""

    def __init__(self, hook: str, plugin: str, cause: BaseException) -> None:
        super().__init__(f"hook {hook} of plugin {plugin!r} failed: {cause!r}")
        self.hook = hook
        self.plugin = plugin
        self.__cause__ = cause


def _summarise(messages: Mapping[Any, Any]) -> str:
    parts = []
    for key, value in list(messages.items())[:5]:
        if isinstance(value, Mapping):
            value = "; ".join(f"{k}: {v}" for k, v in value.items())
        parts.append(f"{key}: {value}")
    more = len(messages) - len(parts)
    return "invalid input: " + ", ".join(parts) + (f" (+{more} more)" if more > 0 else "")
