"""The plugin scaffold behind ``crm plugin new``: names derived from a distribution name,
and the files of a new plugin distribution rendered from the templates in ``template/``.

The naming rule: the distribution name is ``crm-`` followed by one or more words of
lowercase letters and digits joined by single hyphens, each word starting with a letter
(``crm-nps``, ``crm-loyalty-cards``), at most 30 characters. From it come the package
and entry point name (hyphens become underscores: ``crm_nps``), the short name without
``crm-`` that namespaces the plugin's tables (``nps_item``), permissions
(``nps.item.view``), audit entity (``nps_item``) and API resource (``/api/v1/nps-items``),
and the migration branch (the package name, as every plugin's branch is named).

The templates are Jinja2 files ending in ``.j2``; a folder named ``__package__`` becomes
the package name, ``gitignore`` becomes ``.gitignore``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from crm_core.version import API_VERSION, __version__

#: Where the templates are (package data of crm-core).
TEMPLATES = Path(__file__).parent / "template"
#: The longest distribution name accepted (the revision id `<short>_0001` fits Alembic's 32
#: characters, the constraint names PostgreSQL's 63).
MAX_NAME = 30
#: Folder and file names of the templates that are renamed when written.
_RENAMED = {"__package__": None, "gitignore": ".gitignore"}
_NAME = re.compile(r"crm(-[a-z][a-z0-9]*)+")
#: Names of crm-core itself, which a plugin may not take.
_RESERVED = {"crm-core"}


class ScaffoldError(ValueError):
    """A name or a target the scaffold refuses; the message says why and what to do."""


@dataclass(frozen=True)
class PluginNames:
    """Every name of a new plugin, derived from its distribution name."""

    dist: str
    """The distribution (``pip install``) name: ``crm-nps``."""
    package: str
    """The import package, entry point name and migration branch: ``crm_nps``."""
    short: str
    """The namespace of tables, permissions and events: ``nps``."""

    @property
    def short_hyphen(self) -> str:
        """The short name with hyphens, for URLs and e-mail domains: ``loyalty-cards``."""
        return self.short.replace("_", "-")

    @property
    def title(self) -> str:
        """The short name as a heading: ``Loyalty Cards``."""
        return self.short.replace("_", " ").title()


def plugin_names(name: str) -> PluginNames:
    """The names of the plugin distributed as ``name``; :class:`ScaffoldError` when it is
    not a valid name for a crm-core plugin, or a plugin of that name is installed."""
    if not _NAME.fullmatch(name):
        raise ScaffoldError(
            f"{name!r} is not a plugin name: use 'crm-' and words of lowercase letters and "
            "digits joined by hyphens, each starting with a letter (e.g. crm-nps, "
            "crm-loyalty-cards)"
        )
    if len(name) > MAX_NAME:
        raise ScaffoldError(f"{name!r} is longer than {MAX_NAME} characters: choose a shorter name")
    if name in _RESERVED:
        raise ScaffoldError(f"{name!r} is crm-core's own name: choose another one")
    package = name.replace("-", "_")
    installed = {ep.name for ep in entry_points(group="crm_core.plugins")}
    if package in installed:
        raise ScaffoldError(
            f"a plugin named {package!r} is installed already: choose another name"
        )
    return PluginNames(dist=name, package=package, short=package.removeprefix("crm_"))


def context(names: PluginNames, *, author: str, email: str | None) -> dict[str, Any]:
    """The values the templates are rendered with."""
    major, minor = (int(part) for part in API_VERSION.split(".")[:2])
    author_entry = f'{{ name = "{_toml(author)}"'
    author_entry += f', email = "{_toml(email)}" }}' if email else " }"
    return {
        "dist": names.dist,
        "package": names.package,
        "short": names.short,
        "short_hyphen": names.short_hyphen,
        "title": names.title,
        "model": "Item",
        "table": f"{names.short}_item",
        "entity": f"{names.short}_item",
        "permission": f"{names.short}.item",
        "resource": f"{names.short_hyphen}-items",
        "revision": f"{names.short}_0001",
        "description": f"{names.title} for crm-core: items kept per customer.",
        "author": author,
        "authors": author_entry,
        "year": dt.date.today().year,
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "api_major": major,
        "api_minor": minor,
        "core_version": ".".join(__version__.split(".")[:2]),
    }


def create(
    names: PluginNames, target: Path, *, author: str, email: str | None = None
) -> list[Path]:
    """Write the new plugin's distribution into ``target`` (which must not exist yet);
    return the files written, relative to ``target``."""
    if target.exists():
        raise ScaffoldError(f"{target} exists already: choose another --directory or name")
    sources = sorted(TEMPLATES.rglob("*.j2"))
    if not sources:
        raise ScaffoldError(
            f"this installation of crm-core has no scaffold templates ({TEMPLATES}): "
            "reinstall crm-core"
        )
    values = context(names, author=author, email=email)
    environment = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # the output is Python, TOML and Markdown, not HTML
    )
    written: list[Path] = []
    for source in sources:
        relative = source.relative_to(TEMPLATES)
        output = Path(*(_output_part(part, names) for part in relative.with_suffix("").parts))
        text = environment.get_template(relative.as_posix()).render(values)
        path = target / output
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(output)
    return written


def _output_part(part: str, names: PluginNames) -> str:
    """A folder or file name of the templates as it is written."""
    if part not in _RENAMED:
        return part
    return _RENAMED[part] or names.package


def _toml(value: str) -> str:
    """``value`` inside a TOML basic string."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
