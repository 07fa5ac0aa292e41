"""Deprecated hooks and public names: one registry, the warnings it drives.

Every deprecation of the public API is a :class:`Deprecation` in :data:`HOOKS` or
:data:`NAMES`, with the API version that deprecated it, the (major) API version that
removes it, and what to use instead. From there:

* :func:`deprecate_hookspecs` marks the hookspecs of :data:`HOOKS` with pluggy's
  ``warn_on_impl``, so a plugin implementing one gets a :class:`CRMDeprecationWarning`
  naming the removal version when it is registered (in its test runs, too);
* :func:`deprecated` wraps a public function of :data:`NAMES` so that calling it warns;
* ``crm plugins check`` lists which deprecated hooks and names each plugin uses.

The policy (docs/plugins.md, "Compatibility policy"): a deprecation lives at least one
minor API release and is removed only in a major one.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

import pluggy
from packaging.version import InvalidVersion, Version

__all__ = [
    "HOOKS",
    "NAMES",
    "CRMDeprecationWarning",
    "Deprecation",
    "deprecate_hookspecs",
    "deprecated",
    "deprecation_of",
]

F = TypeVar("F", bound=Callable[..., Any])

ATTRIBUTE = "crm_deprecation"
"""The attribute of a deprecated hookspec (or function) holding its :class:`Deprecation`."""


class CRMDeprecationWarning(DeprecationWarning):
    """Warns about a deprecated crm-core hook or name; filter on it to make them errors."""


@dataclass(frozen=True)
class Deprecation:
    """One deprecated hook or public name.

    ``name`` is the hook's name (``crm_old_hook``) or the public name's dotted path
    (``crm_core.old_function``); ``since`` the API version that deprecated it;
    ``removed_in`` the major API version that removes it (``"2.0"``); ``use_instead``
    says what replaces it.
    """

    name: str
    since: str
    removed_in: str
    use_instead: str

    def __post_init__(self) -> None:
        try:
            since, removed = Version(self.since), Version(self.removed_in)
        except InvalidVersion as exc:
            raise ValueError(f"deprecation of {self.name}: {exc}") from exc
        if any(removed.release[1:]):
            raise ValueError(
                f"deprecation of {self.name}: removed_in {self.removed_in} is not a major "
                "version (deprecated API is removed only in a major release)"
            )
        if removed.major <= since.major:
            raise ValueError(
                f"deprecation of {self.name}: removed_in {self.removed_in} must be a later "
                f"major version than since {self.since}"
            )

    @property
    def message(self) -> str:
        """The warning text: what, since when, removed in which version, what to use."""
        return (
            f"{self.name} is deprecated since crm_core API {self.since} and will be removed "
            f"in API {self.removed_in}; use {self.use_instead} instead"
        )

    def removed_by(self, api_version: str) -> bool:
        """Whether the API version ``api_version`` or its next major no longer has this."""
        return Version(self.removed_in).major <= Version(api_version).major + 1


def _registry(*deprecations: Deprecation) -> Mapping[str, Deprecation]:
    return {deprecation.name: deprecation for deprecation in deprecations}


HOOKS: Mapping[str, Deprecation] = _registry()
"""Deprecated hooks of ``crm_core.hookspecs`` by name (none today)."""

NAMES: Mapping[str, Deprecation] = _registry()
"""Deprecated public names by dotted path, e.g. ``crm_core.old_function`` (none today)."""


def deprecate_hookspecs(
    module: ModuleType, marker: pluggy.HookspecMarker, deprecations: Iterable[Deprecation]
) -> None:
    """Mark the hookspecs of ``module`` named by ``deprecations`` with ``warn_on_impl``.

    The spec keeps its other options (``firstresult``, ``historic``...). ``marker`` is
    the module's :class:`pluggy.HookspecMarker`. A deprecation naming no hookspec of
    the module is an error, so the registry cannot go stale. Plugins publishing
    hookspecs of their own (``crm_addhooks``) may use this for theirs.
    """
    spec_attribute = f"{marker.project_name}_spec"
    for deprecation in deprecations:
        function = getattr(module, deprecation.name, None)
        options = getattr(function, spec_attribute, None)
        if function is None or options is None:
            raise ValueError(f"{module.__name__} has no hookspec {deprecation.name!r}")
        options = {**options, "warn_on_impl": CRMDeprecationWarning(deprecation.message)}
        marker(**options)(function)
        setattr(function, ATTRIBUTE, deprecation)


def deprecated(deprecation: Deprecation) -> Callable[[F], F]:
    """Decorate a public function so that calling it warns with ``deprecation.message``.

    ``@deprecated(NAMES["crm_core.old_function"])``: the warning, a
    :class:`CRMDeprecationWarning`, points at the caller's line.
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            warnings.warn(deprecation.message, CRMDeprecationWarning, stacklevel=2)
            return function(*args, **kwargs)

        setattr(wrapper, ATTRIBUTE, deprecation)
        return wrapper  # type: ignore[return-value]

    return decorate


def deprecation_of(function: Any) -> Deprecation | None:
    """The :class:`Deprecation` a hookspec or function was marked with, if any."""
    found = getattr(function, ATTRIBUTE, None)
    return found if isinstance(found, Deprecation) else None
