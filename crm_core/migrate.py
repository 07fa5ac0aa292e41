"""Schema migrations with Alembic: one script graph, a branch per plugin.

Core's revisions carry the branch label ``crm_core``; each plugin's folder (from
``crm_register_migrations``) holds a branch labelled with the plugin's name. All
branches share one ``alembic_version`` table, so a plugin revision can
``depends_on`` a core or another plugin's revision. ``upgrade`` goes to
``heads``: core and every installed plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from crm_core.errors import CRMError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from crm_core.runtime import CRM

MIGRATIONS = Path(__file__).parent / "migrations"
CORE_BRANCH = "crm_core"


@dataclass(frozen=True)
class BranchStatus:
    """Where one branch (core or a plugin) stands in a database."""

    branch: str
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        """Whether the database is at this branch's head."""
        return self.current == self.head


def alembic_config(crm: CRM, *, connection: Connection | None = None) -> Config:
    """An Alembic :class:`~alembic.config.Config` for core plus every enabled plugin."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    folders = [str(MIGRATIONS / "versions")]
    for plugin_folders in crm.registry.migration_folders.values():
        folders.extend(plugin_folders)
    config.set_main_option("version_locations", " ".join(folders))
    config.set_main_option("path_separator", "space")
    config.attributes["crm"] = crm
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(crm: CRM, target: str = "heads", *, connection: Connection | None = None) -> None:
    """Take core and every plugin branch to ``target`` (default: all heads)."""
    command.upgrade(alembic_config(crm, connection=connection), target)


def downgrade(crm: CRM, target: str, *, connection: Connection | None = None) -> None:
    """Go back to ``target``, e.g. ``crm_testplugin@base`` to drop a plugin's tables."""
    command.downgrade(alembic_config(crm, connection=connection), target)


def check(crm: CRM, *, connection: Connection | None = None) -> None:
    """Raise when the models and the migrations disagree (Alembic's ``check``)."""
    command.check(alembic_config(crm, connection=connection))


def status(crm: CRM) -> list[BranchStatus]:
    """Each branch's current revision in the database and its head in the scripts."""
    script = ScriptDirectory.from_config(alembic_config(crm))
    with crm.engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    result = []
    for head in sorted(script.get_revisions("heads"), key=lambda r: _branch_of(script, r)):
        branch = _branch_of(script, head)
        lineage = {rev.revision for rev in script.iterate_revisions(head.revision, "base")}
        applied = next((rev for rev in current if rev in lineage), None)
        result.append(BranchStatus(branch=branch, current=applied, head=head.revision))
    return result


def unknown_revisions(crm: CRM) -> list[str]:
    """Revisions recorded in the database that no installed branch knows (plugin removed)."""
    script = ScriptDirectory.from_config(alembic_config(crm))
    known = {rev.revision for rev in script.walk_revisions()}
    with crm.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    return [rev for rev in current if rev not in known]


def revision(
    crm: CRM, plugin: str, message: str, *, autogenerate: bool = True
) -> Any:
    """Write a new revision for ``plugin``'s branch (its first one starts the branch).

    With ``autogenerate``, only the plugin's own tables are compared, so the
    revision does not pick up core's or other plugins' changes.
    """
    config = alembic_config(crm)
    if plugin == CORE_BRANCH:
        folder = str(MIGRATIONS / "versions")
    else:
        folders = crm.registry.migration_folders.get(plugin)
        if not folders:
            raise CRMError(
                f"plugin {plugin!r} registers no migration folder (crm_register_migrations)"
            )
        folder = folders[0]
    config.attributes["only_plugin"] = plugin
    script = ScriptDirectory.from_config(config)
    has_branch = any(
        plugin in (rev.branch_labels or ()) for rev in script.walk_revisions()
    )
    kwargs: dict[str, Any] = {"message": message, "autogenerate": autogenerate}
    if has_branch:
        kwargs["head"] = f"{plugin}@head"
    else:
        kwargs.update(head="base", branch_label=plugin, version_path=folder)
        if plugin != CORE_BRANCH:
            kwargs["depends_on"] = _core_head(script)
    return command.revision(config, **kwargs)


def include_object_for(crm: CRM, only_plugin: str | None) -> Callable[..., bool]:
    """Alembic filter: compare only tables of enabled code, or of ``only_plugin``."""
    owners = crm.registry.models

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, _: Any) -> bool:
        if type_ != "table":
            table = getattr(obj, "table", None)
            name = table.name if table is not None else name
        if name == "alembic_version":
            return False
        owner = owners.get(name or "")
        if owner is None:
            # A reflected table no installed code declares: a removed plugin's, leave it.
            return False
        return only_plugin is None or owner == only_plugin

    return include_object


def _branch_of(script: ScriptDirectory, revision: Any) -> str:
    for rev in script.iterate_revisions(revision.revision, "base"):
        if rev.branch_labels:
            return sorted(rev.branch_labels)[0]
    return "?"


def _core_head(script: ScriptDirectory) -> str | None:
    for head in script.get_revisions("heads"):
        if _branch_of(script, head) == CORE_BRANCH:
            return head.revision
    return None
