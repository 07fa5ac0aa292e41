"""MkDocs hook: the hook reference, generated from the hookspec docstrings.

A page line ``<!-- hook-reference: MODULE -->`` becomes one section per hookspec of
``MODULE`` (``crm_core.hookspecs``), grouped under the module's ``# ---`` banner
comments, each with its signature, how pluggy calls it (firstresult, historic, a
deprecation) and its docstring, linked to its guide section in ``hooks.md``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from collections.abc import Callable
from typing import Any

MARKER = re.compile(r"^<!-- hook-reference: (?P<module>[\w.]+) -->$", re.M)
BANNER = re.compile(r"^# -{10,}\n# (?P<title>.+)\n# -{10,}$", re.M)


def hookspecs_of(module: Any) -> dict[str, Callable[..., Any]]:
    """The module's functions that carry a pluggy spec marker, in source order."""
    return {
        name: value
        for name, value in vars(module).items()
        if inspect.isfunction(value) and spec_options(value)
    }


def spec_options(function: Callable[..., Any]) -> dict[str, Any]:
    """pluggy's options of a hookspec (``firstresult``, ``historic``, ``warn_on_impl``...)."""
    for attr, value in vars(function).items():
        if attr.endswith("_spec") and isinstance(value, dict):
            return value
    return {}


def groups(module: Any) -> list[tuple[str | None, list[str]]]:
    """``(banner title, hook names)`` in source order; hooks before any banner come first."""
    source = inspect.getsource(module)
    banners = [
        (source.count("\n", 0, found.start()) + 1, found.group("title").strip())
        for found in BANNER.finditer(source)
    ]
    result: list[tuple[str | None, list[str]]] = [(None, [])]
    specs = hookspecs_of(module)
    for node in ast.parse(source).body:
        if not isinstance(node, ast.FunctionDef) or node.name not in specs:
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        title = max((b for b in banners if b[0] < first), default=(0, None))[1]
        if title != result[-1][0]:
            result.append((title, []))
        result[-1][1].append(node.name)
    return [group for group in result if group[1]]


def to_markdown(docstring: str) -> str:
    """A reST-flavoured docstring as Markdown (double backticks, roles such as ``:class:``)."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", docstring)
    text = re.sub(r"``(.+?)``", r"`\1`", text, flags=re.S)
    # Markdown needs a blank line before a list that follows a paragraph.
    return re.sub(r"(?m)^(?!\s*[*-] )(.+)\n(?=[*-] )", r"\1\n\n", text)


def calling_convention(options: dict[str, Any]) -> list[str]:
    """How pluggy calls the hook, as sentences."""
    lines = []
    if options.get("firstresult"):
        lines.append("**firstresult**: the first implementation returning a value wins.")
    else:
        lines.append("Every implementation is called; the results are collected in a list.")
    if options.get("historic"):
        lines.append("**historic**: plugins registered later are called with the past calls.")
    if options.get("warn_on_impl") is not None:
        lines.append(f"**Deprecated**: {options['warn_on_impl']}")
    for argument, warning in (options.get("warn_on_impl_args") or {}).items():
        lines.append(f"**Argument `{argument}` deprecated**: {warning}")
    return lines


def render(module_name: str, guide: str = "hooks.md") -> str:
    """The reference of every hookspec of ``module_name`` as Markdown."""
    module = importlib.import_module(module_name)
    specs = hookspecs_of(module)
    out: list[str] = []
    for title, names in groups(module):
        if title:
            out += [f"## {title}", ""]
        for name in names:
            function = specs[name]
            signature = name + str(inspect.signature(function)).replace("'", "")
            out += [f"### `{name}`", "", "```python", signature, "```", ""]
            out += [*calling_convention(spec_options(function)), ""]
            out += [to_markdown(inspect.getdoc(function) or ""), ""]
            out += [f"Guide and example: [{name}]({guide}#{name}).", ""]
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each ``<!-- hook-reference: MODULE -->`` line with that module's reference."""
    return MARKER.sub(lambda found: render(found.group("module")), markdown)
