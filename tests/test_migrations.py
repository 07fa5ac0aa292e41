"""Migrations: one Alembic graph with a branch for core and one per plugin.

Every test starts from an empty database (``fresh_database_url``) of each backend and
drives :mod:`crm_core.migrate` the way ``crm db ...`` does. The plugin is the
installed ``crm-testplugin`` (branch ``crm_testplugin``, one revision that
``depends_on`` core); ``fakeplugins.notes`` is a plugin without revisions yet.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fakeplugins import notes
from sqlalchemy import event, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from crm_core import CRM, CRMError, create_app, migrate
from crm_core.migrate import BranchStatus
from crm_core.models import Customer
from crm_core.runtime import CORE_TABLES
from crm_core.services import customers
from crm_core.testing import crm_test_settings

TESTPLUGIN_VERSIONS = (
    Path(__file__).parent / "plugins" / "crm-testplugin" / "crm_testplugin" / "migrations"
) / "versions"
PLUGIN_TABLE = "testplugin_welcome_task"

MakeCRM = Callable[..., CRM]


@pytest.fixture
def make_crm(fresh_database_url: str, tmp_path: Path) -> Iterator[MakeCRM]:
    """Build CRMs on one empty database; ``plugins`` (the allow-list) keeps others out."""
    made: list[CRM] = []

    def make(*modules: ModuleType, **settings: Any) -> CRM:
        settings = {"plugins": ["crm_testplugin"], **settings}
        crm = CRM(
            crm_test_settings(fresh_database_url, tmp_path / "instance", **settings),
            plugins=modules,
        )
        made.append(crm)
        return crm

    yield make
    for crm in made:
        crm.dispose()


def tables(crm: CRM) -> set[str]:
    """Tables of models (not ``alembic_version``, nor core's search index tables)."""
    with crm.engine.connect() as connection:
        names = set(inspect(connection).get_table_names()) - {"alembic_version"}
    return {name for name in names if not name.startswith(migrate.SEARCH_OBJECT_PREFIXES)}


def core_schema(crm: CRM) -> dict[str, Any]:
    """Columns, indexes and foreign keys of core's tables, to compare before and after."""
    with crm.engine.connect() as connection:
        inspector = inspect(connection)
        return {
            table: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                sorted(i["name"] for i in inspector.get_indexes(table)),
                sorted(str(fk) for fk in inspector.get_foreign_keys(table)),
            )
            for table in sorted(CORE_TABLES)
        }


def by_branch(crm: CRM) -> dict[str, BranchStatus]:
    return {branch.branch: branch for branch in migrate.status(crm)}


def count(crm: CRM, table: str) -> int:
    with crm.engine.connect() as connection:
        return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_upgrade_creates_core_and_plugin_tables_that_match_the_models(make_crm):
    crm = make_crm()
    migrate.upgrade(crm)

    assert tables(crm) == set(CORE_TABLES) | {PLUGIN_TABLE}
    status = migrate.status(crm)
    assert [branch.branch for branch in status] == ["crm_core", "crm_testplugin"]
    assert all(branch.up_to_date for branch in status)
    assert status[1].current == "testplugin_0001"
    assert migrate.unknown_revisions(crm) == []
    migrate.check(crm)  # alembic check: no drift between models and migrations

    with crm.engine.connect() as connection:
        (foreign_key,) = inspect(connection).get_foreign_keys(PLUGIN_TABLE)
    assert foreign_key["referred_table"] == "customer"
    assert foreign_key["options"].get("ondelete") == "CASCADE"


def test_sqlite_foreign_keys_are_checked_only_when_revisions_ran(make_crm):
    crm = make_crm()
    sqlite = crm.engine.dialect.name == "sqlite"
    statements: list[str] = []
    event.listen(crm.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: statements.append(statement))
    migrate.upgrade(crm)
    # PostgreSQL enforces foreign keys as rows are written: no check afterwards.
    assert ("PRAGMA foreign_key_check" in statements) is sqlite
    statements.clear()
    migrate.upgrade(crm)  # nothing to do: on a large file the check alone took 40 s
    assert statements and "PRAGMA foreign_key_check" not in statements


def test_plugin_installed_later_gets_its_tables_and_core_is_untouched(make_crm):
    core_only = make_crm(plugins=[])
    migrate.upgrade(core_only)
    assert tables(core_only) == set(CORE_TABLES)
    assert [branch.branch for branch in migrate.status(core_only)] == ["crm_core"]
    # The plugin's model is imported in this process, but the plugin is not enabled:
    # its table must not count as drift.
    migrate.check(core_only)
    with core_only.unit_of_work() as uow:
        acme = customers.create(uow, {"name": "ACME"})
    core_before = by_branch(core_only)["crm_core"]
    schema_before = core_schema(core_only)

    crm = make_crm()
    pending = by_branch(crm)
    assert pending["crm_testplugin"].current is None
    assert not pending["crm_testplugin"].up_to_date
    assert pending["crm_core"] == core_before
    migrate.upgrade(crm)

    assert tables(crm) == set(CORE_TABLES) | {PLUGIN_TABLE}
    assert all(branch.up_to_date for branch in migrate.status(crm))
    assert by_branch(crm)["crm_core"] == core_before
    assert core_schema(crm) == schema_before
    with crm.unit_of_work() as uow:
        assert customers.get(uow, acme.id).name == "ACME"
    migrate.check(crm)


def test_downgrading_a_plugin_branch_drops_only_its_tables(make_crm):
    crm = make_crm()
    migrate.upgrade(crm)
    with crm.unit_of_work() as uow:
        customers.create(uow, {"name": "ACME"})
    assert count(crm, PLUGIN_TABLE) == 1
    schema_before = core_schema(crm)

    migrate.downgrade(crm, "crm_testplugin@base")

    assert tables(crm) == set(CORE_TABLES)
    assert core_schema(crm) == schema_before
    assert count(crm, "customer") == 1
    status = by_branch(crm)
    assert status["crm_core"].up_to_date
    assert status["crm_testplugin"].current is None
    # Core's revision is still recorded: upgrading brings back only the plugin's table.
    migrate.upgrade(crm)
    assert tables(crm) == set(CORE_TABLES) | {PLUGIN_TABLE}
    assert count(crm, PLUGIN_TABLE) == 0
    assert count(crm, "customer") == 1


def test_uninstalled_plugin_is_reported_and_core_keeps_working(make_crm, fresh_database_url):
    migrate.upgrade(make_crm())
    uninstalled = make_crm(plugins=[])

    assert migrate.unknown_revisions(uninstalled) == ["testplugin_0001"]
    with pytest.raises(CRMError, match=r"testplugin_0001.*crm db downgrade <plugin>@base"):
        migrate.upgrade(uninstalled)
    with pytest.raises(CRMError, match="testplugin_0001"):
        migrate.check(uninstalled)

    app = create_app(
        {
            "database_url": fresh_database_url,
            "instance_path": str(Path(uninstalled.settings.instance_path)),
            "secret_key": "test-secret-key-not-for-production",
            "plugins": [],
        }
    )
    crm = app.extensions["crm"]
    try:
        assert crm.plugins.infos["crm_testplugin"].state.value == "disabled"
        client = app.test_client()
        assert client.get("/healthz").get_json() == {"status": "ok"}
        assert client.get("/status").status_code == 200
        with crm.unit_of_work() as uow:
            acme = customers.create(uow, {"name": "ACME"})
        with crm.session_factory() as session:
            assert session.scalar(select(func.count()).select_from(Customer)) == 1
        # The plugin's table stays, untouched by a CRM that does not load the plugin.
        assert PLUGIN_TABLE in tables(crm)
        assert count(crm, PLUGIN_TABLE) == 0
    finally:
        crm.dispose()

    # Enabled again, everything is known and current; its hook works on new customers.
    crm = make_crm()
    assert migrate.unknown_revisions(crm) == []
    assert all(branch.up_to_date for branch in migrate.status(crm))
    with crm.unit_of_work() as uow:
        customers.get(uow, acme.id)
        customers.create(uow, {"name": "Globex"})
    assert count(crm, PLUGIN_TABLE) == 1


def test_revision_extends_the_plugin_branch(make_crm, tmp_path):
    versions = tmp_path / "testplugin-versions"
    shutil.copytree(TESTPLUGIN_VERSIONS, versions, ignore=shutil.ignore_patterns("__pycache__"))
    repository_files = sorted(path.name for path in TESTPLUGIN_VERSIONS.glob("*.py"))
    crm = make_crm()
    crm.registry.migration_folders["crm_testplugin"] = [str(versions)]
    migrate.upgrade(crm)

    script = migrate.revision(crm, "crm_testplugin", "second step", rev_id="testplugin_0002")

    path = Path(script.path)
    assert path.parent == versions
    assert script.down_revision == "testplugin_0001"
    source = path.read_text(encoding="utf-8")
    # Nothing changed in the plugin's models, and core's tables are not its business.
    assert "op." not in source.split("def upgrade() -> None:")[1].split("def downgrade")[0]
    assert sorted(p.name for p in TESTPLUGIN_VERSIONS.glob("*.py")) == repository_files

    plugin = by_branch(crm)["crm_testplugin"]
    assert (plugin.current, plugin.head, plugin.up_to_date) == (
        "testplugin_0001",
        "testplugin_0002",
        False,
    )
    migrate.upgrade(crm)
    assert by_branch(crm)["crm_testplugin"].current == "testplugin_0002"
    migrate.check(crm)


def _replace_upgrade(path: Path, body: str) -> None:
    source = path.read_text(encoding="utf-8")
    marker = "def upgrade() -> None:\n    pass\n"
    assert marker in source
    path.write_text(source.replace(marker, "def upgrade() -> None:\n" + body), encoding="utf-8")


def test_a_new_plugin_branch_is_started_and_migrated_safely(make_crm, tmp_path, monkeypatch):
    versions = tmp_path / "notes-versions"
    versions.mkdir()
    monkeypatch.setattr(notes, "MIGRATION_FOLDERS", [str(versions)])
    crm = make_crm(notes)
    migrate.upgrade(crm)
    core_head = by_branch(crm)["crm_core"].head

    # The first revision starts the branch, depends on core, and holds only its tables.
    first = migrate.revision(crm, "fake_notes", "notebooks", rev_id="notes_0001")
    assert Path(first.path).parent == versions
    assert (first.down_revision, first.branch_labels) == (None, {"fake_notes"})
    assert first.dependencies == core_head
    source = Path(first.path).read_text(encoding="utf-8")
    assert "create_table(\n" in source or "create_table(" in source
    assert "fakeplugin_notebook" in source and "fakeplugin_note" in source
    assert PLUGIN_TABLE not in source and '"customer"' not in source
    migrate.upgrade(crm)
    assert {"fakeplugin_notebook", "fakeplugin_note"} <= tables(crm)
    assert [b.branch for b in migrate.status(crm)] == ["crm_core", "crm_testplugin", "fake_notes"]
    migrate.check(crm)

    with crm.unit_of_work() as uow:
        acme = customers.create(uow, {"name": "ACME"})
        book = notes.Notebook(customer_id=acme.id, title="Calls")
        uow.session.add(book)
        uow.session.flush()
        uow.session.add(notes.Note(notebook_id=book.id, body="Call back on Monday"))

    # A revision that rebuilds the parent table (SQLite's batch mode copies it and drops
    # the original), then one that fails half-way.
    second = migrate.revision(
        crm, "fake_notes", "rebuild notebooks", autogenerate=False, rev_id="notes_0002"
    )
    assert second.down_revision == "notes_0001"
    _replace_upgrade(
        Path(second.path),
        '    recreate = "always" if op.get_bind().dialect.name == "sqlite" else "auto"\n'
        '    with op.batch_alter_table("fakeplugin_notebook", recreate=recreate):\n'
        "        pass\n",
    )
    third = migrate.revision(crm, "fake_notes", "broken", autogenerate=False, rev_id="notes_0003")
    _replace_upgrade(
        Path(third.path),
        '    columns = [sa.Column("id", sa.Integer(), primary_key=True)]\n'
        '    op.create_table("fakeplugin_scratch", *columns)\n'
        '    raise RuntimeError("half-way")\n',
    )
    # One upgrade is one transaction, on SQLite too: nothing of it stays.
    with pytest.raises(RuntimeError, match="half-way"):
        migrate.upgrade(crm)
    assert "fakeplugin_scratch" not in tables(crm)
    assert by_branch(crm)["fake_notes"].current == "notes_0001"
    assert count(crm, "fakeplugin_note") == 1

    Path(third.path).unlink()
    migrate.upgrade(crm)
    assert by_branch(crm)["fake_notes"].current == "notes_0002"
    # The notes that refer to the rebuilt table survived it.
    assert count(crm, "fakeplugin_note") == 1
    migrate.check(crm)

    # Foreign keys are enforced again after a migration.
    with pytest.raises(IntegrityError), crm.unit_of_work() as uow:
        uow.session.add(notes.Note(notebook_id=987654, body="orphan"))
