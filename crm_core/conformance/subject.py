"""The plugin a conformance test checks: its module, package, source files and manifest."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import importlib_metadata

from crm_core.config import normalise_plugin_name
from crm_core.plugins import ENTRY_POINT_GROUP, PluginInfo, PluginManifest

if TYPE_CHECKING:
    from crm_core.runtime import CRM


@dataclass(frozen=True)
class Subject:
    """What the checks need to know about the plugin under test."""

    name: str
    """The plugin's (entry point) name, e.g. ``crm_sales``."""
    short: str
    """The prefix of its tables (``sales_``) and permissions (``sales.``)."""
    info: PluginInfo
    module: ModuleType
    package: str
    """The top-level import name of the plugin's code (``crm_sales``)."""

    @property
    def manifest(self) -> PluginManifest:
        """The plugin's manifest (the manifest check fails first when it has none)."""
        assert isinstance(self.info.manifest, PluginManifest), (
            f"plugin {self.name}: its plugin module has no `manifest = PluginManifest(...)`"
        )
        return self.info.manifest

    @property
    def dependencies(self) -> tuple[str, ...]:
        """The plugins it requires, normalised."""
        return tuple(normalise_plugin_name(name) for name in self.manifest.requires)

    @property
    def optional(self) -> tuple[str, ...]:
        """The plugins it uses when present, normalised."""
        return tuple(normalise_plugin_name(name) for name in self.manifest.optional)

    @property
    def root(self) -> Path:
        """The folder of the plugin's package (or its one module file)."""
        top = sys.modules.get(self.package) or self.module
        paths = list(getattr(top, "__path__", ()))
        if paths:
            return Path(paths[0])
        file = getattr(top, "__file__", None)
        assert file, f"plugin {self.name}: its module {top.__name__} has no source file"
        return Path(file)

    def source_files(self) -> list[Path]:
        """Every Python file of the plugin's package, sorted."""
        root = self.root
        if root.is_file():
            return [root]
        return sorted(path for path in root.rglob("*.py") if "__pycache__" not in path.parts)

    def own(self, hook_name: str, crm: CRM, **kwargs: Any) -> list[Any]:
        """Everything the plugin (only it) returns from ``hook_name``."""
        return [
            item
            for plugin_name, items in crm.call_each(hook_name, **kwargs)
            if plugin_name == self.name
            for item in items or ()
        ]


def subject_of(crm: CRM, plugin: str, import_name: str | None = None, prefix: str | None = None
               ) -> Subject:
    """The :class:`Subject` named ``plugin`` as the CRM ``crm`` loaded it."""
    name = normalise_plugin_name(plugin)
    info = crm.plugins.infos.get(name)
    assert info is not None, (
        f"plugin {name} is not known to the CRM under test: install its distribution "
        f"(pip install -e .) with an entry point in the group {ENTRY_POINT_GROUP!r} named "
        f"{name!r}, or check the class attribute `plugin`"
    )
    assert info.module is not None, f"plugin {name} could not be loaded: {info.reason}"
    return Subject(
        name=name,
        short=prefix or name.removeprefix("crm_"),
        info=info,
        module=info.module,
        package=import_name or info.module.__name__.split(".")[0],
    )


def installed_plugins() -> dict[str, str]:
    """Installed plugin name -> the module its entry point names."""
    found: dict[str, str] = {}
    for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(normalise_plugin_name(ep.name), ep.value.split(":")[0])
    return found


def plugin_module(name: str) -> ModuleType | None:
    """The plugin module of the installed plugin ``name`` (``None`` when not installed)."""
    for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        if normalise_plugin_name(ep.name) == name:
            loaded: ModuleType = ep.load()
            return loaded
    return None
