"""Whether a plugin's hook implementations match hookspecs, checked on a fresh plugin manager.

The manager gets core's hookspecs, then those the plugin's declared plugins add through
``crm_addhooks`` (required ones, then optional ones when installed), then the plugin's
own: so a hook is found only where the plugin may rely on it.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pluggy

from crm_core import hookspecs


def _manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return manager


def _spec_names(manager: pluggy.PluginManager) -> set[str]:
    return {name for name in dir(manager.hook) if not name.startswith("_")
            and getattr(manager.hook, name).spec is not None}


def added_hookspecs(module: ModuleType, manager: pluggy.PluginManager | None = None) -> set[str]:
    """The hooks ``module``'s ``crm_addhooks`` adds to ``manager`` (a fresh one by default)."""
    manager = manager or _manager()
    before = _spec_names(manager)
    for attribute in dir(module):
        opts = manager.parse_hookimpl_opts(module, attribute)
        if opts is not None and (opts.get("specname") or attribute) == "crm_addhooks":
            getattr(module, attribute)(pm=manager)
    return _spec_names(manager) - before


def hook_problems(
    module: ModuleType,
    *,
    required: dict[str, ModuleType | None],
    optional: dict[str, ModuleType | None],
) -> list[str]:
    """What is wrong with ``module``'s hook implementations.

    ``required`` and ``optional`` map the plugins the manifest declares to their plugin
    modules (``None``: not installed).
    """
    manager = _manager()
    owners: dict[str, str] = {}
    for name, dependency in (*required.items(), *optional.items()):
        if dependency is not None:
            owners.update(dict.fromkeys(added_hookspecs(dependency, manager), name))
    optional_hooks = {hook for hook, owner in owners.items() if owner in optional}
    own = added_hookspecs(module, manager)
    problems = []
    for attribute in sorted(dir(module)):
        opts = manager.parse_hookimpl_opts(module, attribute)
        if opts is None:
            continue
        hook = str(opts.get("specname") or attribute)
        is_optional = bool(opts.get("optionalhook"))
        owner = owners.get(hook) or _owner_by_name(hook, [*required, *optional])
        if hook in own or (hook in owners and owner in required):
            continue
        if owner in optional or hook in optional_hooks:
            if not is_optional:
                problems.append(f"{attribute}: implements {hook}, a hook of the optional plugin "
                                f"{owner}: mark it @hookimpl(optionalhook=True)")
            continue
        if owner is None and not _has_spec(manager, hook):
            problems.append(
                f"{attribute}: implements {hook}, which no hookspec of crm-core, of this plugin "
                "or of a plugin its manifest declares defines (misspelled? a hook of another "
                "plugin: declare it in the manifest's requires or optional)"
            )
    problems.extend(_signature_problems(module, manager))
    return problems


def _owner_by_name(hook: str, plugins: list[str]) -> str | None:
    """The declared plugin whose name prefixes ``hook`` (its hooks when it is not installed)."""
    return next((name for name in plugins if hook.startswith(f"{name}_")), None)


def _has_spec(manager: pluggy.PluginManager, hook: str) -> bool:
    caller = getattr(manager.hook, hook, None)
    return caller is not None and caller.spec is not None


def _signature_problems(module: ModuleType, manager: pluggy.PluginManager) -> list[str]:
    """Pluggy's own check: an implementation may take only arguments its spec names."""
    register: Callable[..., object] = manager.register
    try:
        register(module, name="plugin under test")
    except (pluggy.PluginValidationError, ValueError) as exc:
        return [f"hook implementation does not match its spec: {exc}"]
    return []
