"""Plugin discovery, manifests, load order and isolation.

Plugins are distributions that expose an entry point in the group
``crm_core.plugins``; the entry point names the plugin and points to the module
holding its hook implementations and a ``manifest``
(:class:`PluginManifest`). Loading:

1. discover entry points (plus plugins passed in code, e.g. by tests);
2. apply the configuration's allow-list (to installed plugins; plugins passed in
   code are always wanted) and deny-list (to all);
3. import each plugin; one that raises is reported and skipped (strict mode: fatal);
4. check its manifest: the crm_core API range it supports and its required plugins;
5. sort the survivors topologically (ties by name);
6. let them add hookspecs (``crm_addhooks``), in that order;
7. register them with pluggy so that hooks run in load order (core's first, then
   a dependency's before its dependents'), and verify every implementation
   matches a spec, so a misspelled hook is an error instead of silence.

A plugin refused at any step takes the plugins that require it along.

The manager lives on a :class:`crm_core.runtime.CRM`, never in a global.
"""

from __future__ import annotations

import enum
import graphlib
import inspect
import logging
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import importlib_metadata
import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from crm_core import hookspecs
from crm_core.config import Settings, normalise_plugin_name
from crm_core.errors import PluginError
from crm_core.version import API_VERSION

ENTRY_POINT_GROUP = "crm_core.plugins"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PluginManifest:
    """What a plugin declares about itself, as ``manifest = PluginManifest(...)`` in its module.

    ``core_api`` is a PEP 440 range of crm_core API versions the plugin works with
    (``">=1.0,<2"``). ``requires`` names plugins that must be installed and enabled;
    ``optional`` names plugins that, when present, load before this one.
    """

    core_api: str
    requires: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    description: str = ""


class PluginState(enum.StrEnum):
    """Where a discovered plugin ended up."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    REFUSED = "refused"


@dataclass
class PluginInfo:
    """Everything known about one discovered plugin, for ``crm plugins`` and the admin UI."""

    name: str
    version: str
    distribution: str | None
    state: PluginState = PluginState.ENABLED
    reason: str = ""
    module: ModuleType | None = None
    manifest: PluginManifest | None = None
    hooks: list[str] = field(default_factory=list)


@dataclass
class _Candidate:
    name: str
    version: str
    distribution: str | None
    load: Any
    explicit: bool = False
    """Passed in code (tests, embedded use): enabled whatever the allow-list says."""


class PluginRegistry:
    """Loads plugins into a pluggy :class:`~pluggy.PluginManager` and remembers the outcome."""

    def __init__(self, settings: Settings, extra_plugins: Sequence[ModuleType] = ()) -> None:
        self.settings = settings
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._extra = list(extra_plugins)
        self.discovered = True
        """Whether :meth:`load` looked for installed plugins (or took only those passed in code)."""

    # -- public -----------------------------------------------------------------

    @property
    def extra_modules(self) -> list[ModuleType]:
        """Plugin modules passed in code (tests, embedded use), enabled whatever the lists say."""
        return list(self._extra)

    @property
    def enabled(self) -> list[PluginInfo]:
        """Enabled plugins in load order."""
        return [info for info in self.infos.values() if info.state is PluginState.ENABLED]

    def load(self, *, discover: bool = True) -> None:
        """Discover, check, order and register plugins (see the module docstring)."""
        from crm_core import builtin

        self.discovered = discover
        candidates = list(self._discover()) if discover else []
        candidates += [self._candidate_from_module(module) for module in self._extra]
        for candidate in candidates:
            self._consider(candidate)
        self._refuse_missing_dependencies()
        order = self._load_order()
        self._add_hooks(order)
        # pluggy calls the plugin registered last first. Register in reverse load order,
        # core last, so that hooks run in load order: core, then each dependency
        # before the plugins that depend on it.
        for info in reversed(order):
            if info.state is PluginState.ENABLED:
                self._register(info)
        self.pm.register(builtin, name="crm_core")
        self._check_hook_names()
        self._refuse_missing_dependencies()
        ordered = [info.name for info in order]
        ordered += sorted(name for name in self.infos if name not in ordered)
        self.infos = {name: self.infos[name] for name in ordered}
        for info in self.enabled:
            info.hooks = sorted(
                caller.name for caller in self.pm.get_hookcallers(info.module) or ()
            )

    def blame(self, hook_name: str, exc: BaseException) -> str:
        """Name the plugin whose code raised ``exc`` while ``hook_name`` ran."""
        modules = {info.name: info.module.__name__ for info in self.enabled if info.module}
        tops = [module.split(".")[0] for module in modules.values()]
        # A plugin owns its top-level package, unless several plugins share one
        # (module plugins of a test package): then it owns only its own module.
        roots = {
            (module.split(".")[0] if tops.count(module.split(".")[0]) == 1 else module): name
            for name, module in modules.items()
        }
        for frame, _line in reversed(list(traceback.walk_tb(exc.__traceback__))):
            module_name = str(frame.f_globals.get("__name__", ""))
            for root, name in roots.items():
                if module_name == root or module_name.startswith(root + "."):
                    return name
        return "crm_core"

    # -- discovery --------------------------------------------------------------

    def _discover(self) -> Iterable[_Candidate]:
        seen: set[str] = set()
        for ep in sorted(
            importlib_metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name
        ):
            name = normalise_plugin_name(ep.name)
            if name in seen:
                log.warning("plugin %s is installed twice; using the first entry point", name)
                continue
            seen.add(name)
            dist = ep.dist
            yield _Candidate(
                name=name,
                version=dist.version if dist else "unknown",
                distribution=dist.name if dist else None,
                load=ep.load,
            )

    @staticmethod
    def _candidate_from_module(module: ModuleType) -> _Candidate:
        name = normalise_plugin_name(getattr(module, "PLUGIN_NAME", module.__name__.split(".")[0]))
        return _Candidate(
            name=name,
            version=str(getattr(module, "__version__", "0")),
            distribution=None,
            load=lambda: module,
            explicit=True,
        )

    def _consider(self, candidate: _Candidate) -> None:
        info = PluginInfo(candidate.name, candidate.version, candidate.distribution)
        if candidate.name in self.infos or candidate.name == "crm_core":
            raise PluginError(candidate.name, "two plugins share this name")
        self.infos[candidate.name] = info
        allowed = self.settings.plugins
        if allowed is not None and candidate.name not in allowed and not candidate.explicit:
            self._set(info, PluginState.DISABLED, "not in the allow-list (CRM_PLUGINS)")
            return
        if candidate.name in self.settings.disabled_plugins:
            self._set(info, PluginState.DISABLED, "in the deny-list (CRM_DISABLED_PLUGINS)")
            return
        try:
            module = candidate.load()
        except Exception as exc:
            self._refuse(info, f"failed to import: {type(exc).__name__}: {exc}", exc)
            return
        info.module = module
        manifest = getattr(module, "manifest", None)
        if not isinstance(manifest, PluginManifest):
            self._refuse(info, "has no `manifest = PluginManifest(...)` in its plugin module")
            return
        info.manifest = manifest
        try:
            supported = SpecifierSet(manifest.core_api)
        except InvalidSpecifier:
            self._refuse(info, f"manifest core_api {manifest.core_api!r} is not a version range")
            return
        if Version(API_VERSION) not in supported:
            self._refuse(
                info,
                f"supports crm_core API {manifest.core_api}, but this crm-core provides API "
                f"{API_VERSION}; install a version of {info.distribution or info.name} made "
                f"for crm_core API {API_VERSION}",
            )

    def _refuse_missing_dependencies(self) -> None:
        changed = True
        while changed:
            changed = False
            for info in self.enabled:
                assert info.manifest is not None
                for required in info.manifest.requires:
                    dependency = self.infos.get(normalise_plugin_name(required))
                    if dependency is None:
                        reason = (
                            f"requires plugin {required!r}, which is not installed: install it "
                            f"(pip install {required.replace('_', '-')})"
                        )
                    elif dependency.state is not PluginState.ENABLED:
                        reason = (
                            f"requires plugin {required!r}, which is {dependency.state.value} "
                            f"({dependency.reason})"
                        )
                    else:
                        continue
                    self._refuse(info, reason)
                    changed = True
                    break

    def _load_order(self) -> list[PluginInfo]:
        """Enabled plugins, each after the plugins it requires or optionally uses.

        Ties are broken by name, so the order never depends on discovery order.
        Plugins in a dependency cycle are refused (strict mode: an error).
        """
        while True:
            enabled = {info.name: info for info in self.enabled}
            sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
            for name in sorted(enabled):
                manifest = enabled[name].manifest
                assert manifest is not None
                deps = [normalise_plugin_name(d) for d in (*manifest.requires, *manifest.optional)]
                sorter.add(name, *sorted(d for d in deps if d in enabled))
            try:
                sorter.prepare()
            except graphlib.CycleError as exc:
                cycle: list[str] = exc.args[1]
                for name in sorted(set(cycle)):
                    self._refuse(
                        enabled[name],
                        f"plugins depend on each other in a cycle: {' -> '.join(cycle)}",
                        exc,
                    )
                self._refuse_missing_dependencies()
                continue
            order: list[PluginInfo] = []
            while sorter.is_active():
                ready = sorted(sorter.get_ready())
                order.extend(enabled[name] for name in ready)
                sorter.done(*ready)
            return order

    def _register(self, info: PluginInfo) -> None:
        try:
            self.pm.register(info.module, name=info.name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            self._refuse(info, f"hook implementation does not match its spec: {exc}", exc)

    def _add_hooks(self, order: Sequence[PluginInfo]) -> None:
        """Let each plugin, in load order, add hookspecs (``crm_addhooks``); refuse one that fails.

        This runs before any plugin is registered, so pluggy checks every implementation
        against every spec as it registers it, and a mismatch refuses the implementing
        plugin, not the one that published the hook. (It replaces pluggy's historic
        call, which would come too late for that.)
        """
        for info in order:
            for function in self._addhooks_functions(info.module):
                try:
                    wanted = inspect.signature(function).parameters
                    function(**({"pm": self.pm} if "pm" in wanted else {}))
                except Exception as exc:
                    self._refuse(info, f"crm_addhooks failed: {type(exc).__name__}: {exc}", exc)
                    break

    def _addhooks_functions(self, module: Any) -> list[Any]:
        functions = []
        for attribute in dir(module):
            opts = self.pm.parse_hookimpl_opts(module, attribute)
            if opts is not None and (opts.get("specname") or attribute) == "crm_addhooks":
                functions.append(getattr(module, attribute))
        return functions

    def _check_hook_names(self) -> None:
        for info in self.enabled:
            for caller in self.pm.get_hookcallers(info.module) or ():
                if caller.spec is not None:
                    continue
                impls = [i for i in caller.get_hookimpls() if i.plugin is info.module]
                if all(impl.optionalhook for impl in impls):
                    continue
                self._refuse(
                    info,
                    f"implements unknown hook {caller.name!r} (misspelled? or a hook of a plugin "
                    "that is not installed: mark it @hookimpl(optionalhook=True))",
                )

    # -- state changes ----------------------------------------------------------

    def _set(self, info: PluginInfo, state: PluginState, reason: str) -> None:
        info.state = state
        info.reason = reason

    def _refuse(self, info: PluginInfo, reason: str, exc: BaseException | None = None) -> None:
        if self.settings.strict_plugins:
            raise PluginError(info.name, reason) from exc
        log.warning("plugin %s refused: %s", info.name, reason)
        if info.module is not None and self.pm.is_registered(info.module):
            self.pm.unregister(info.module)
        self._set(info, PluginState.REFUSED, reason)
