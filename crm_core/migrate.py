"""Schema migrations with Alembic: one script graph, a branch per plugin.

Core's revisions carry the branch label ``crm_core``; each plugin's folder (from
``crm_register_migrations``) holds a branch labelled with the plugin's name. All
branches share one ``alembic_version`` table, so a plugin revision can
``depends_on`` a core or another plugin's revision. ``upgrade`` goes to
``heads``: core and every installed plugin.
"""

from __future__ import annotations

import warnings
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
#: Names of database objects that are no model's: the search indexes (``crm_core.search``).
SEARCH_OBJECT_PREFIXES = ("search_", "ix_search_")
#: The ``Table.info`` key listing indexes a migration makes by hand (expression indexes
#: such as ``lower(code)``, which Alembic cannot compare): ``alembic check`` skips them.
HAND_MADE_INDEXES = "hand_made_indexes"


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
    config.set_main_option("script_location", _escape(str(MIGRATIONS)))
    folders = [str(MIGRATIONS / "versions")]
    for plugin_folders in crm.registry.migration_folders.values():
        folders.extend(plugin_folders)
    # One folder per line: a folder's path may hold spaces.
    config.set_main_option("version_locations", "\n".join(_escape(f) for f in folders))
    config.set_main_option("path_separator", "newline")
    config.attributes["crm"] = crm
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(crm: CRM, target: str = "heads", *, connection: Connection | None = None) -> None:
    """Take core and every plugin branch to ``target`` (default: all heads)."""
    config = alembic_config(crm, connection=connection)
    _refuse_unknown(crm, config, connection)
    command.upgrade(config, target)


def downgrade(crm: CRM, target: str, *, connection: Connection | None = None) -> None:
    """Go back to ``target``, e.g. ``crm_testplugin@base`` to drop a plugin's tables."""
    config = alembic_config(crm, connection=connection)
    _refuse_unknown(crm, config, connection)
    command.downgrade(config, target)


def check(crm: CRM, *, connection: Connection | None = None) -> None:
    """Raise when the models and the migrations disagree (Alembic's ``check``).

    Only the tables of core and of the enabled plugins are compared.
    """
    config = alembic_config(crm, connection=connection)
    _refuse_unknown(crm, config, connection)
    with warnings.catch_warnings():
        # PostgreSQL's expression indexes (the search indexes, plugins' hand-made ones)
        # cannot be reflected; they are left out of the comparison on purpose.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        command.check(config)


def status(crm: CRM) -> list[BranchStatus]:
    """Each branch's current revision in the database and its head in the scripts.

    Core comes first, then the plugins' branches by name. Alembic records a revision
    that another one ``depends_on`` only through that one (core's revision is implied
    by a plugin's that depends on it), so the applied revisions are worked out from
    the whole ancestry of what the database records. Revisions of code that is not
    enabled (:func:`unknown_revisions`) cannot be followed: what they imply is shown
    as not applied.
    """
    script = ScriptDirectory.from_config(alembic_config(crm))
    with crm.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    known = {rev.revision for rev in script.walk_revisions()}
    applied: set[str] = set()
    for rev in current:
        if rev in known:
            applied.update(r.revision for r in script.iterate_revisions(rev, "base"))
    result = []
    for branch in _branches(script):
        head = _branch_head(script, branch)
        at = next(
            (
                rev.revision
                for rev in script.iterate_revisions(head, "base")
                if rev.revision in applied and _in_branch(rev, branch)
            ),
            None,
        )
        result.append(BranchStatus(branch=branch, current=at, head=head))
    return result


def unknown_revisions(crm: CRM, *, connection: Connection | None = None) -> list[str]:
    """Revisions recorded in the database that no installed branch knows (plugin removed)."""
    return _unknown(crm, ScriptDirectory.from_config(alembic_config(crm)), connection)


def revision(
    crm: CRM,
    plugin: str,
    message: str,
    *,
    autogenerate: bool = True,
    rev_id: str | None = None,
) -> Any:
    """Write a new revision for ``plugin``'s branch (its first one starts the branch).

    With ``autogenerate``, only the plugin's own tables are compared, so the
    revision does not pick up core's or other plugins' changes; the database must
    be at every head. A plugin's first revision ``depends_on`` core's head.
    ``rev_id`` names the revision (default: a random id).
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
    has_branch = any(plugin in (rev.branch_labels or ()) for rev in script.walk_revisions())
    kwargs: dict[str, Any] = {"message": message, "autogenerate": autogenerate}
    if has_branch:
        kwargs["head"] = f"{plugin}@head"
    else:
        kwargs.update(head="base", branch_label=plugin, version_path=folder)
        if plugin != CORE_BRANCH:
            kwargs["depends_on"] = _branch_head(script, CORE_BRANCH)
    if rev_id is not None:
        kwargs["rev_id"] = rev_id
    return command.revision(config, **kwargs)


def include_object_for(crm: CRM, only_plugin: str | None) -> Callable[..., bool]:
    """Alembic filter: compare only tables of enabled code, or of ``only_plugin``."""
    owners = crm.registry.models

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, _: Any) -> bool:
        if (name or "").startswith(SEARCH_OBJECT_PREFIXES):
            # Search indexes (FTS5 tables, expression and trigram indexes) are made by
            # hand in migration 0003, not declared as models: nothing to compare.
            return False
        if type_ != "table":
            table = getattr(obj, "table", None)
            if type_ == "index" and table is not None and _hand_made(table.name, name):
                return False
            name = table.name if table is not None else name
        if name == "alembic_version":
            return False
        owner = owners.get(name or "")
        if owner is None:
            # A reflected table no installed code declares: a removed plugin's, leave it.
            return False
        return only_plugin is None or owner == only_plugin

    return include_object


def _hand_made(table_name: str, index_name: str | None) -> bool:
    """Whether the model of ``table_name`` lists ``index_name`` as made by hand."""
    from crm_core.db import Base

    declared = Base.metadata.tables.get(table_name)
    return declared is not None and index_name in declared.info.get(HAND_MADE_INDEXES, ())


def _escape(value: str) -> str:
    """Alembic's options are interpolated (``%(here)s``): keep a ``%`` in a path literal."""
    return value.replace("%", "%%")


def _unknown(crm: CRM, script: ScriptDirectory, connection: Connection | None) -> list[str]:
    known = {rev.revision for rev in script.walk_revisions()}
    if connection is not None:
        current = MigrationContext.configure(connection).get_current_heads()
    else:
        with crm.engine.connect() as own:
            current = MigrationContext.configure(own).get_current_heads()
    return sorted(rev for rev in current if rev not in known)


def _refuse_unknown(crm: CRM, config: Config, connection: Connection | None) -> None:
    """Explain, instead of Alembic's "Can't locate revision", what to do about a removed plugin."""
    unknown = _unknown(crm, ScriptDirectory.from_config(config), connection)
    if unknown:
        raise CRMError(
            f"the database records migration revision(s) {', '.join(unknown)} that no enabled "
            "code provides: a plugin whose tables are in this database was uninstalled or "
            "disabled. Enable or reinstall it to migrate; to remove a plugin for good, first "
            "drop its tables with `crm db downgrade <plugin>@base` while it is enabled."
        )


def _in_branch(rev: Any, branch: str) -> bool:
    labels = rev.branch_labels or ()
    return branch in labels or (not labels and rev.revision == branch)


def _branches(script: ScriptDirectory) -> list[str]:
    """Every branch's name, core first: the label of each base (an unlabelled base: its id)."""
    names = set()
    for rev in script.walk_revisions():
        if rev.is_base:
            labels = sorted(rev.branch_labels or ())
            names.add(labels[0] if labels else rev.revision)
    return sorted(names, key=lambda name: (name != CORE_BRANCH, name))


def _branch_head(script: ScriptDirectory, branch: str) -> str:
    """The head of ``branch`` (even when another branch depends on it, unlike "heads")."""
    head = script.get_revision(f"{branch}@head")
    assert head is not None
    return head.revision
