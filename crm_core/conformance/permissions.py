"""The permission names a plugin's code checks, found in its syntax tree and templates.

A name counts as checked where it is passed to ``require`` or ``has_permission``, given
as ``permission=`` (or ``permissions=``) to any call, or tested with ``in
<...>.permissions`` (in Python and in Jinja templates). Names held in module or class
constants (``VIEW = "sales.deal.view"``, ``require(actor, VIEW)``, ``quotas.ADMIN``)
are followed by the constant's name.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

#: Functions whose string arguments are permission names.
CHECKING_FUNCTIONS = frozenset({"require", "has_permission"})
#: Keyword arguments whose values are permission names (or, for an ``ApiResource``, the
#: prefix of its ``.view``/``.edit``/``.archive`` permissions).
PERMISSION_KEYWORDS = frozenset({"permission", "permissions"})
_TEMPLATE_CHECKS = (
    re.compile(r"""(["'])([\w.:-]+)\1\s+(?:not\s+)?in\s+[\w.]*permissions\b"""),
    re.compile(r"""has_permission\([^)]*?(["'])([\w.:-]+)\1"""),
)


def checked_permissions(files: Iterable[Path], template_files: Iterable[Path] = ()
                        ) -> dict[str, list[str]]:
    """Permission name -> where the plugin's code checks it (``path:line``)."""
    trees = {path: ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
             for path in files}
    constants = _string_constants(trees.values())
    found: dict[str, list[str]] = defaultdict(list)
    for path, tree in trees.items():
        for node in ast.walk(tree):
            for value in _checked_values(node):
                for name in _strings(value, constants):
                    found[name].append(f"{path}:{node.lineno}")
    for path in template_files:
        text = path.read_text(encoding="utf-8")
        for pattern in _TEMPLATE_CHECKS:
            for match in pattern.finditer(text):
                found[match.group(2)].append(f"{path}:{text.count(chr(10), 0, match.start()) + 1}")
    return dict(found)


def _checked_values(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Call):
        values = [kw.value for kw in node.keywords if kw.arg in PERMISSION_KEYWORDS]
        if _called_name(node.func) in CHECKING_FUNCTIONS:
            values.extend(node.args)
        return values
    if isinstance(node, ast.Compare):
        return [
            left
            for left, op, right in zip([node.left, *node.comparators], node.ops,
                                       node.comparators, strict=False)
            if isinstance(op, ast.In | ast.NotIn) and _called_name(right) == "permissions"
        ]
    return []


def _called_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _strings(node: ast.expr, constants: dict[str, set[str]]) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return {name for item in node.elts for name in _strings(item, constants)}
    name = _called_name(node)
    return set(constants.get(name, ())) if name else set()


def _string_constants(trees: Iterable[ast.Module]) -> dict[str, set[str]]:
    """Constant name -> the strings it names, in any module or class of the plugin."""
    constants: dict[str, set[str]] = defaultdict(set)
    for tree in trees:
        bodies = [tree.body] + [node.body for node in tree.body if isinstance(node, ast.ClassDef)]
        for body in bodies:
            for statement in body:
                for target, value in _assignments(statement):
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        constants[target].add(value.value)
    # One level of aliases: ``VIEW = opportunities.VIEW``.
    for tree in trees:
        for statement in tree.body:
            for target, value in _assignments(statement):
                name = _called_name(value)
                if name and name in constants and name != target:
                    constants[target] |= constants[name]
    return constants


def _assignments(statement: ast.stmt) -> list[tuple[str, ast.expr]]:
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        return [(statement.target.id, statement.value)] if statement.value else []
    if not isinstance(statement, ast.Assign):
        return []
    pairs = []
    for target in statement.targets:
        if isinstance(target, ast.Name):
            pairs.append((target.id, statement.value))
        elif (isinstance(target, ast.Tuple) and isinstance(statement.value, ast.Tuple)
              and len(target.elts) == len(statement.value.elts)):
            pairs.extend((t.id, v) for t, v in zip(target.elts, statement.value.elts, strict=True)
                         if isinstance(t, ast.Name))
    return pairs
