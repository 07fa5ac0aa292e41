"""The shape of a plugin's migration branch, read from Alembic's script graph."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic.script import ScriptDirectory

from crm_core import migrate

if TYPE_CHECKING:
    from crm_core.runtime import CRM


def _revisions_in(script: ScriptDirectory, folders: Iterable[str | Path]) -> dict[str, Any]:
    roots = [Path(folder).resolve() for folder in folders]
    return {rev.revision: rev for rev in script.walk_revisions()
            if any(Path(rev.path).resolve().is_relative_to(root) for root in roots)}


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def branch_problems(crm: CRM, plugin: str, requires: Iterable[str] = ()) -> list[str]:
    """What is wrong with the migration branch of ``plugin`` in ``crm``'s script graph.

    Its revisions must form a branch of their own, labelled ``plugin``, whose
    ``depends_on`` name only revisions of core (not core's head) or of a required plugin.
    """
    folders = crm.registry.migration_folders.get(plugin, [])
    if not folders:
        return []
    script = ScriptDirectory.from_config(migrate.alembic_config(crm))
    ours = _revisions_in(script, folders)
    if not ours:
        return [f"the folders {folders} (crm_register_migrations) hold no revision"]
    core = _revisions_in(script, [migrate.MIGRATIONS / "versions"])
    core_head = script.get_revision(f"{migrate.CORE_BRANCH}@head").revision
    allowed = set(core)
    for name in requires:
        allowed |= set(_revisions_in(script, crm.registry.migration_folders.get(name, [])))
    problems = []
    bases = sorted(rev.revision for rev in ours.values() if rev.down_revision is None)
    if len(bases) != 1:
        problems.append(f"the branch has {len(bases)} first revisions (down_revision = None) "
                        f"{bases}: it needs exactly one")
    for rev in sorted(ours.values(), key=lambda r: r.revision):
        # Alembic copies a branch's label to every later revision: read the file's own.
        labels = set(_names(getattr(rev, "_orig_branch_labels", rev.branch_labels)))
        if rev.down_revision is None and labels != {plugin}:
            problems.append(f"{rev.revision}: the first revision must set "
                            f"branch_labels = ({plugin!r},), not {sorted(labels)}")
        if rev.down_revision is not None and labels:
            problems.append(f"{rev.revision}: only the first revision carries branch_labels")
        outside = [down for down in _names(rev.down_revision) if down not in ours]
        if outside:
            problems.append(f"{rev.revision}: down_revision {outside} is not of this branch; "
                            "name other branches' revisions in depends_on")
        for dependency in _names(rev.dependencies):
            target = script.get_revision(dependency)
            ident = target.revision if target is not None else dependency
            if ident not in allowed:
                problems.append(f"{rev.revision}: depends_on {dependency!r}, which is neither "
                                "core's nor a required plugin's revision")
            elif ident == core_head:
                problems.append(
                    f"{rev.revision}: depends_on core's head {ident!r}; name the oldest core "
                    "revision that has the tables you reference (docs/hooks.md, "
                    "crm_register_migrations)"
                )
    return problems
