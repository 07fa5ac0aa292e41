"""Which modules a plugin's code imports, read from its syntax tree (never by running it).

A plugin may import crm-core's public modules (:data:`PUBLIC_MODULES`), its own package,
the packages of the plugins its manifest declares (``requires``, ``optional``) and any
third-party library; never crm-core's internals or an undeclared plugin's code.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: crm-core's modules a plugin may import (each exactly; submodules not listed are
#: internal). docs/plugins.md "The public API" says what each offers.
PUBLIC_MODULES = frozenset({
    "crm_core",
    "crm_core.authz",
    "crm_core.conformance",
    "crm_core.deprecations",
    "crm_core.duplicates",
    "crm_core.errors",
    "crm_core.extensions",
    "crm_core.history",
    "crm_core.i18n",
    "crm_core.ids",
    "crm_core.imports",
    "crm_core.jobs",
    "crm_core.migrate",
    "crm_core.models",
    "crm_core.phones",
    "crm_core.schemas",
    "crm_core.schemas.fieldtypes",
    "crm_core.search",
    "crm_core.services",
    "crm_core.services.contacts",
    "crm_core.services.customers",
    "crm_core.services.interactions",
    "crm_core.services.merges",
    "crm_core.services.users",
    "crm_core.testing",
    "crm_core.timeline",
    "crm_core.web.api",
    "crm_core.web.api.openapi",
    "crm_core.web.api.pagination",
    "crm_core.web.api.problems",
    "crm_core.web.i18n",
    "crm_core.web.ui",
    "crm_core.web.ui.access",
    "crm_core.web.ui.charts",
    "crm_core.web.ui.conflicts",
    "crm_core.web.ui.forms",
    "crm_core.web.ui.names",
    "crm_core.web.ui.paging",
    "crm_core.web.ui.printing",
})
#: Modules only migration revisions may import: Alembic writes ``crm_core.db.UTCDateTime``
#: (and the other column types) into the revisions it generates.
MIGRATION_MODULES = frozenset({"crm_core.db"})


@dataclass(frozen=True)
class Import:
    """One module a source file imports."""

    module: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module}"


def imports_of(path: Path) -> Iterator[Import]:
    """The absolute imports of ``path`` (relative ones stay inside the package).

    ``from package import name`` counts as importing ``package.name`` when that is a
    module of crm-core, so ``from crm_core.services import records`` is seen as the
    internal ``crm_core.services.records``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, path, node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                yield Import(_module_of(node.module, alias.name), path, node.lineno)


def _module_of(module: str, name: str) -> str:
    if module.split(".")[0] != "crm_core" or name == "*":
        return module
    candidate = f"{module}.{name}"
    try:
        return candidate if importlib.util.find_spec(candidate) is not None else module
    except (ImportError, ValueError):
        return module


def forbidden_imports(
    files: Iterable[Path],
    *,
    own: str,
    allowed_plugins: Iterable[str],
    other_plugins: Iterable[str],
    migration_folders: Iterable[str | Path] = (),
) -> list[str]:
    """What in ``files`` imports crm-core internals or an undeclared plugin's code.

    ``own`` is the plugin's package; ``allowed_plugins`` the packages of its declared
    plugins; ``other_plugins`` every installed plugin's package. Any other ``crm_*``
    package counts as a plugin too.
    """
    allowed = {own, *allowed_plugins}
    others = set(other_plugins) - allowed
    migrations = [Path(folder).resolve() for folder in migration_folders]
    problems = []
    for path in files:
        in_migrations = any(path.resolve().is_relative_to(folder) for folder in migrations)
        for found in imports_of(path):
            top = found.module.split(".")[0]
            if top == "crm_core":
                public = PUBLIC_MODULES | (MIGRATION_MODULES if in_migrations else frozenset())
                if found.module not in public:
                    problems.append(f"{found} is internal to crm-core")
            elif top in allowed:
                continue
            elif top in others or top.startswith("crm_"):
                problems.append(f"{found} belongs to another plugin, not declared in the "
                                "manifest's requires/optional")
    return problems
