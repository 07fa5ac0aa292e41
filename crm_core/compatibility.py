"""Whether installed plugins suit this crm-core, and what of theirs is deprecated.

:func:`check_plugins` backs ``crm plugins check``. It loads every installed plugin
into a registry of its own, whatever the allow- and deny-lists say (the question is
whether a plugin *would* work), and reports for each: whether its manifest's
``core_api`` range holds this API version, why it is refused if it is, which deprecated
hooks it implements and which deprecated public names its source uses (found by
reading its imports, see :func:`deprecated_names_used`).
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from crm_core import deprecations
from crm_core.deprecations import Deprecation
from crm_core.plugins import PluginInfo, PluginRegistry, PluginState
from crm_core.version import API_VERSION


@dataclass(frozen=True)
class DeprecatedUse:
    """A deprecated hook a plugin implements, or a deprecated name its code uses (``where``)."""

    deprecation: Deprecation
    where: str = ""


@dataclass
class PluginCheck:
    """The verdict on one installed plugin."""

    name: str
    version: str
    distribution: str | None
    state: str
    """Its state in the running CRM (``disabled`` ones are checked all the same)."""
    core_api: str | None
    compatible: bool | None
    """Its ``core_api`` range holds the API version; ``None`` when it has no readable manifest."""
    refused: str = ""
    """Why the plugin cannot load, even with every other plugin installed enabled."""
    hooks: list[DeprecatedUse] = field(default_factory=list)
    names: list[DeprecatedUse] = field(default_factory=list)
    api_version: str = API_VERSION

    @property
    def removed_soon(self) -> list[DeprecatedUse]:
        """Deprecated hooks it implements that the next major API version removes."""
        return [use for use in self.hooks if use.deprecation.removed_by(self.api_version)]

    @property
    def ok(self) -> bool:
        """Loads on this core and implements no hook the next major version removes."""
        return self.compatible is not False and not self.refused and not self.removed_soon


def check_plugins(
    registry: PluginRegistry,
    *,
    api_version: str = API_VERSION,
    names: Mapping[str, Deprecation] | None = None,
) -> list[PluginCheck]:
    """Check every plugin ``registry`` knows of (or would, without its lists), by name.

    ``names`` are the deprecated public names to look for (default:
    :data:`crm_core.deprecations.NAMES`).
    """
    names = deprecations.NAMES if names is None else names
    settings = dataclasses.replace(
        registry.settings, plugins=None, disabled_plugins=(), strict_plugins=False
    )
    everything = PluginRegistry(settings, registry.extra_modules)
    # Refusals are logged and deprecated hooks warn when the running CRM loads; here
    # they are reported instead.
    logger = logging.getLogger(PluginRegistry.__module__)
    was_disabled, logger.disabled = logger.disabled, True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            everything.load(discover=registry.discovered)
    finally:
        logger.disabled = was_disabled
    tops = [info.module.__name__.split(".")[0] for info in everything.infos.values() if info.module]
    checks = []
    for info in sorted(everything.infos.values(), key=lambda info: info.name):
        configured = registry.infos.get(info.name)
        checks.append(
            PluginCheck(
                name=info.name,
                version=info.version,
                distribution=info.distribution,
                state=(configured or info).state.value,
                core_api=info.manifest.core_api if info.manifest else None,
                compatible=_compatible(info, api_version),
                refused=info.reason if info.state is PluginState.REFUSED else "",
                hooks=deprecated_hooks_implemented(everything.pm, info.module),
                names=deprecated_names_used(
                    info.module, names, shared=bool(info.module)
                    and tops.count(info.module.__name__.split(".")[0]) > 1,
                ),
                api_version=api_version,
            )
        )
    return checks


def _compatible(info: PluginInfo, api_version: str) -> bool | None:
    if info.manifest is None:
        return None
    try:
        return Version(api_version) in SpecifierSet(info.manifest.core_api)
    except InvalidSpecifier:
        return False


def deprecated_hooks_implemented(
    pm: pluggy.PluginManager, module: ModuleType | None
) -> list[DeprecatedUse]:
    """The deprecated hooks ``module`` has implementations of, registered with ``pm`` or not."""
    if module is None:
        return []
    found: dict[str, DeprecatedUse] = {}
    for attribute in dir(module):
        options = pm.parse_hookimpl_opts(module, attribute)
        if options is None:
            continue
        hook_name = options.get("specname") or attribute
        caller = getattr(pm.hook, hook_name, None)
        spec = getattr(caller, "spec", None)
        deprecation = deprecations.deprecation_of(spec.function) if spec else None
        deprecation = deprecation or deprecations.HOOKS.get(hook_name)
        if deprecation is not None:
            found[hook_name] = DeprecatedUse(deprecation, _location(getattr(module, attribute)))
    return [found[name] for name in sorted(found)]


def _location(function: Any) -> str:
    code = getattr(function, "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno}" if code else ""


def source_files(module: ModuleType, *, shared: bool = False) -> list[Path]:
    """The Python files of a plugin: its top-level package's, or its own module's file.

    ``shared``: other plugins live in the same top-level package, so only the plugin
    module's own file (or package) is the plugin's.
    """
    top = module if shared else sys.modules.get(module.__name__.split(".")[0])
    paths = list(getattr(top, "__path__", []) or [])
    if paths:
        return sorted(file for path in paths for file in Path(path).rglob("*.py"))
    file = getattr(module, "__file__", None)
    return [Path(file)] if file and file.endswith(".py") else []


def deprecated_names_used(
    module: ModuleType | None, names: Mapping[str, Deprecation], *, shared: bool = False
) -> list[DeprecatedUse]:
    """Deprecated public names the plugin's source imports or names by dotted path.

    Cheap and literal: ``from crm_core import old``, ``import crm_core.old`` and
    ``crm_core.old`` are found; a name reached through an alias is not. ``shared``
    as for :func:`source_files`.
    """
    if module is None or not names:
        return []
    uses = []
    for path in source_files(module, shared=shared):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        for node, dotted in _dotted_names(tree):
            if dotted in names:
                uses.append(DeprecatedUse(names[dotted], f"{path}:{node.lineno}"))
    return uses


def _dotted_names(tree: ast.AST) -> Iterator[tuple[ast.stmt | ast.expr, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                yield node, f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name
        elif isinstance(node, ast.Attribute):
            parts = [node.attr]
            value = node.value
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                yield node, ".".join([value.id, *reversed(parts)])
