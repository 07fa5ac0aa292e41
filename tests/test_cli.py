"""The ``crm`` command: db, serve, demo, plugins, user, shell, plugin commands, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from flask import current_app
from sqlalchemy import create_engine, func, select

from crm_core import migrate
from crm_core.cli import cli, main
from crm_core.demo import DEMO_EMAIL
from crm_core.models import Customer, User
from crm_core.services import customers
from crm_core.testing import plugin_module

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No crm.toml, CRM_* variable or Flask CLI flag of the developer's shell leaks in or out."""
    monkeypatch.chdir(tmp_path)
    for name in ("CRM_CONFIG", "CRM_DATABASE_URL", "CRM_PLUGINS", "CRM_DISABLED_PLUGINS",
                 "CRM_STRICT_PLUGINS", "CRM_INSTANCE_PATH", "CRM_SECRET_KEY", "FLASK_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "false")


class Served:
    """Stands in for werkzeug's ``run_simple``: records the call instead of serving."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, Any, dict[str, Any]]] = []

    def __call__(self, host: str, port: int, app: Any, **options: Any) -> None:
        self.calls.append((host, port, app, options))


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Served:
    """Replace the development server by a recorder."""
    recorder = Served()
    monkeypatch.setattr("crm_core.cli.serve.run_simple", recorder)
    return recorder


def invoke(runner, *args: str, input: str | None = None) -> Result:
    """Run ``crm ARGS`` against the test app (its CRM, its rolled-back transaction)."""
    return runner.invoke(args=list(args), input=input)


def crm_env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    """Environment of a ``crm`` process using ``database_url`` and a private instance folder."""
    return {
        "CRM_DATABASE_URL": database_url,
        "CRM_INSTANCE_PATH": str(tmp_path / "instance"),
        "CRM_SECRET_KEY": "cli-test-secret-key-0123456789",
        **extra,
    }


def run(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    """Run ``crm ARGS`` as a user would: the app is built from the environment."""
    return CliRunner().invoke(cli, list(args), env=env, input=input)




def branch_lines(output: str) -> dict[str, list[str]]:
    """``crm db status`` rows by branch name (header and advice left out)."""
    rows = {}
    for line in output.splitlines()[1:]:
        if not line.strip():
            break
        cells = line.split(None, 3)
        rows[cells[0]] = cells[1:]
    return rows


# -- configuration errors ----------------------------------------------------------------


def test_wrong_database_url_is_an_error_message_not_a_traceback(tmp_path):
    result = run(crm_env(tmp_path, "mysql://x"), "db", "status")
    assert result.exit_code == 1
    assert "Error: CRM_DATABASE_URL: unsupported database 'mysql'" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_main_reports_configuration_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CRM_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("CRM_BULK_BATCH_SIZE", "lots")
    with pytest.raises(SystemExit) as exit_info:
        main(["plugins"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "Error: CRM_BULK_BATCH_SIZE: expected a whole number, got 'lots'" in err
    assert "Traceback" not in err


def test_help_still_lists_core_commands_when_the_settings_are_wrong(tmp_path):
    result = run(crm_env(tmp_path, "mysql://x"), "--help")
    assert result.exit_code == 0
    assert "Error: CRM_DATABASE_URL: unsupported database 'mysql'" in result.output
    for name in ("db", "demo", "plugins", "serve", "shell", "user"):
        assert f"  {name} " in result.output


# -- crm db ------------------------------------------------------------------------------


def test_db_status_upgrade_downgrade_on_a_fresh_database(tmp_path, fresh_database_url):
    env = crm_env(tmp_path, fresh_database_url)
    before = run(env, "db", "status")
    assert before.exit_code == 0, before.output
    rows = branch_lines(before.output)
    assert "crm_core" in rows
    assert all(cells == ["-", cells[1], "behind"] for cells in rows.values())
    assert "run `crm db upgrade`" in before.output

    upgraded = run(env, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    after = run(env, "db", "status")
    rows_after = branch_lines(after.output)
    assert set(rows_after) == set(rows)
    for branch, (current, head, state) in rows_after.items():
        assert current == head == rows[branch][1], branch
        assert state == "up to date"
    assert "behind" not in after.output

    down = run(env, "db", "downgrade", "base")
    assert down.exit_code == 0, down.output
    rows_down = branch_lines(run(env, "db", "status").output)
    assert all(state == "behind" for _current, _head, state in rows_down.values())


def test_db_status_names_revisions_of_removed_plugins(tmp_path, fresh_database_url):
    env = crm_env(tmp_path, fresh_database_url)
    assert run(env, "db", "upgrade").exit_code == 0
    engine = create_engine(fresh_database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('gone_0001')")
    engine.dispose()
    result = run(env, "db", "status")
    assert result.exit_code == 0
    assert "unknown revision gone_0001" in result.output
    assert "crm db downgrade <plugin>@base" in result.output
    assert "core cannot be upgraded" in result.output


def test_db_revision_starts_a_plugin_branch(runner, tmp_path):
    folder = tmp_path / "versions"
    folder.mkdir()
    # The runner's CRM is built before the test body: register the folder on its registry.
    crm = runner.app.extensions["crm"]
    crm.registry.migration_folders["crm_notes"] = [str(folder)]
    result = invoke(runner, "db", "revision", "--plugin", "crm_notes", "-m", "notes table",
                    "--empty")
    assert result.exit_code == 0, result.output
    files = list(folder.glob("*.py"))
    assert len(files) == 1
    assert f"created {files[0]}" in result.output
    text = files[0].read_text()
    assert '"""notes table' in text
    assert "branch_labels" in text and "('crm_notes',)" in text
    assert "down_revision: str | Sequence[str] | None = None" in text
    core = next(b for b in migrate.status(crm) if b.branch == "crm_core")
    assert f"depends_on: str | Sequence[str] | None = {core.head!r}" in text


def test_db_revision_for_an_unknown_plugin_is_an_error(runner):
    result = invoke(runner, "db", "revision", "--plugin", "nope", "-m", "x", "--empty")
    assert result.exit_code == 1
    assert "Error: plugin 'nope' registers no migration folder" in result.output


def test_db_downgrade_to_an_unknown_revision_is_an_error(runner):
    result = invoke(runner, "db", "downgrade", "no_such_revision")
    assert result.exit_code == 1
    assert "Error: migration:" in result.output
    assert "no_such_revision" in result.output


# -- crm serve ---------------------------------------------------------------------------


def test_serve_prints_the_url_and_serves_the_app(runner, served):
    result = invoke(runner, "serve", "--host", "0.0.0.0", "--port", "5123")
    assert result.exit_code == 0, result.output
    assert "http://0.0.0.0:5123/" in result.output
    [(host, port, app, options)] = served.calls
    assert (host, port) == ("0.0.0.0", 5123)
    assert app is runner.app
    assert options["use_reloader"] is False


def test_serve_runs_a_worker_beside_the_server_unless_told_not_to(
    tmp_path, crm_database_url, monkeypatch
):
    import threading

    seen: list[set[str]] = []

    def record_threads(host, port, app, **options):
        seen.append({thread.name for thread in threading.enumerate()})

    monkeypatch.setattr("crm_core.cli.serve.run_simple", record_threads)
    env = crm_env(tmp_path, crm_database_url, CRM_QUEUE_URL=f"sqlite:///{tmp_path / 'q.db'}")
    result = run(env, "serve")
    assert result.exit_code == 0, result.output
    assert "background jobs and webhook deliveries in this process" in result.output
    assert "crm-outbox-relay" in seen[0]
    assert "crm-outbox-relay" not in {thread.name for thread in threading.enumerate()}
    result = run(env, "serve", "--no-worker")
    assert result.exit_code == 0, result.output
    assert "crm-outbox-relay" not in seen[1]


def test_serve_refuses_a_database_that_is_behind(tmp_path, fresh_database_url, served):
    result = run(crm_env(tmp_path, fresh_database_url), "serve")
    assert result.exit_code == 1
    assert "is not up to date" in result.output
    assert "Run `crm db upgrade` first." in result.output
    assert served.calls == []


# -- crm demo ----------------------------------------------------------------------------


def test_demo_creates_fills_and_then_serves(tmp_path, fresh_database_url, served):
    env = crm_env(tmp_path, fresh_database_url)
    result = run(env, "demo", "--customers", "12", "--months", "1", "--port", "5555")
    assert result.exit_code == 0, result.output
    assert "Migrating" in result.output
    assert "Created 12 customers" in result.output
    password = result.output.split("with the password: ")[1].split()[0]
    assert [(call[0], call[1]) for call in served.calls] == [("127.0.0.1", 5555)]

    engine = create_engine(fresh_database_url)
    try:
        with engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(Customer)) == 12
            hashed = connection.scalar(select(User.password_hash).where(User.email == DEMO_EMAIL))
    finally:
        engine.dispose()
    user = User(email=DEMO_EMAIL, password_hash=hashed)
    assert user.check_password(password)


def test_demo_refuses_a_filled_database_unless_reset(tmp_path, fresh_database_url, served):
    env = crm_env(tmp_path, fresh_database_url)
    assert run(env, "demo", "--customers", "5", "--no-serve").exit_code == 0

    refused = run(env, "demo", "--customers", "3", "--no-serve")
    assert refused.exit_code == 1
    assert "already holds 5 customers" in refused.output
    assert "crm demo --reset" in refused.output

    reset = run(env, "demo", "--customers", "3", "--no-serve", "--reset", "--seed", "9")
    assert reset.exit_code == 0, reset.output
    assert "Created 3 customers" in reset.output
    engine = create_engine(fresh_database_url)
    try:
        with engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(Customer)) == 3
            assert connection.scalar(select(func.count()).select_from(User)) == 4
    finally:
        engine.dispose()
    assert served.calls == []


def test_demo_refuses_the_test_database_with_a_customer(runner, crm, served):
    with crm.unit_of_work(source="test") as uow:
        customers.create(uow, {"name": "Existing Ltd"})
    result = invoke(runner, "demo", "--customers", "2")
    assert result.exit_code == 1
    assert "already holds 1 customers" in result.output
    with crm.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 1
    assert served.calls == []


# -- crm plugins -------------------------------------------------------------------------


def test_plugins_lists_discovered_plugins_with_state_hooks_and_reason(tmp_path):
    env = crm_env(tmp_path, f"sqlite:///{tmp_path / 'crm.sqlite3'}",
                  CRM_DISABLED_PLUGINS="crm_testplugin")
    table = run(env, "plugins")
    assert table.exit_code == 0, table.output
    lines = {line.split()[0]: line for line in table.output.splitlines()[1:] if line.strip()}
    assert table.output.splitlines()[0].split() == ["name", "version", "state", "hooks", "reason"]
    assert "disabled" in lines["crm_testplugin"]
    assert "CRM_DISABLED_PLUGINS" in lines["crm_testplugin"]
    assert "refused" in lines["crm_incompatible"]
    assert "supports crm_core API >=2.0,<3" in lines["crm_incompatible"]

    listed = json.loads(run(crm_env(tmp_path, env["CRM_DATABASE_URL"]), "plugins", "--json")
                        .stdout)
    by_name = {item["name"]: item for item in listed}
    testplugin = by_name["crm_testplugin"]
    assert testplugin["state"] == "enabled"
    assert testplugin["version"] == "1.2.0"
    assert testplugin["distribution"] == "crm-testplugin"
    assert {"crm_register_commands", "crm_on_customers_created"} <= set(testplugin["hooks"])
    assert testplugin["reason"] == ""
    assert by_name["crm_incompatible"]["state"] == "refused"
    assert by_name["crm_incompatible"]["hooks"] == []


@pytest.mark.plugins()
def test_plugins_outside_the_allow_list_are_listed_as_disabled(runner):
    listed = json.loads(invoke(runner, "plugins", "--json").output)
    assert listed, "the test plugins are installed"
    for item in listed:
        assert item["state"] == "disabled"
        assert "CRM_PLUGINS" in item["reason"]
        assert item["hooks"] == []


def test_plugins_when_none_is_installed(crm_database_url, tmp_path):
    from crm_core.web.app import create_app

    app = create_app(
        {"database_url": crm_database_url, "instance_path": str(tmp_path)},
        discover_plugins=False,
    )
    try:
        runner = app.test_cli_runner()
        result = runner.invoke(cli, ["plugins"])
        assert result.exit_code == 0
        assert result.output == "No plugins installed.\n"
        assert runner.invoke(cli, ["plugins", "--json"]).output.strip() == "[]"
    finally:
        app.extensions["crm"].dispose()


# -- plugin commands ---------------------------------------------------------------------


@click.command("hello-notes")
@click.option("--name", default="world")
def hello_notes(name: str) -> None:
    """A plugin's command: greets, and shows it runs in the app context."""
    crm = current_app.extensions["crm"]
    click.echo(f"hello {name} from {len(crm.plugins.enabled)} plugin(s)")


@pytest.fixture
def crm_plugin_modules(request) -> list[Any]:
    """Plugins a test asks for with ``@pytest.mark.parametrize('crm_plugin_modules', ...)``."""
    return list(getattr(request, "param", []))


NOTES = plugin_module("crm_notes", crm_register_commands=lambda: [hello_notes])
CLASH_CORE = plugin_module("crm_clash", crm_register_commands=lambda: [click.Command("db")])
CLASH_NOTES = plugin_module("crm_notes_two", crm_register_commands=lambda: [hello_notes])


@pytest.mark.parametrize("crm_plugin_modules", [[NOTES]], indirect=True)
def test_plugin_commands_join_the_group_and_run_in_the_app_context(runner):
    listed = invoke(runner, "--help")
    assert "hello-notes" in listed.output
    result = invoke(runner, "hello-notes", "--name", "Ada")
    assert result.exit_code == 0, result.output
    assert "hello Ada from" in result.output


@pytest.mark.parametrize("crm_plugin_modules", [[CLASH_CORE]], indirect=True)
def test_plugin_command_named_like_a_core_command_is_an_error(runner):
    result = invoke(runner, "plugins")
    assert result.exit_code == 1
    assert "plugin 'crm_clash' registers the command 'db', which is a core command" in result.output
    assert "CRM_DISABLED_PLUGINS=crm_clash" in result.output


@pytest.mark.parametrize("crm_plugin_modules", [[NOTES, CLASH_NOTES]], indirect=True)
def test_two_plugins_with_one_command_name_is_an_error(runner):
    result = invoke(runner, "hello-notes")
    assert result.exit_code == 1
    assert "both register the command 'hello-notes'" in result.output


def test_unknown_command_is_a_usage_error(runner):
    result = invoke(runner, "frobnicate")
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.output


# -- crm user create ---------------------------------------------------------------------


def stored_user(crm, email: str) -> User | None:
    with crm.session_factory() as session:
        return session.scalar(select(User).where(User.email == email))


def test_user_create_reads_the_password_from_stdin(runner, crm):
    result = invoke(runner, "user", "create", "--email", "Ada@Example.com", "--name", "Ada",
                    "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "created user ada@example.com" in result.output
    user = stored_user(crm, "ada@example.com")
    assert user is not None
    assert user.name == "Ada"
    assert [role.name for role in user.roles] == ["admin"]
    assert user.check_password(PASSWORD)
    assert not user.check_password(PASSWORD + "\n")


def test_user_create_with_password_option_and_roles(runner, crm):
    result = invoke(runner, "user", "create", "--email", "sam@example.com", "--role", "sales",
                    "--role", "viewer", "--password", PASSWORD)
    assert result.exit_code == 0, result.output
    user = stored_user(crm, "sam@example.com")
    assert user is not None
    assert sorted(role.name for role in user.roles) == ["sales", "viewer"]


@pytest.mark.parametrize("password", ["", "short", "1234567"])
def test_user_create_refuses_short_passwords(runner, crm, password):
    result = invoke(runner, "user", "create", "--email", "eve@example.com", "--password-stdin",
                    input=password + "\n")
    assert result.exit_code == 1
    assert "Error: the password is" in result.output
    assert stored_user(crm, "eve@example.com") is None


def test_user_create_refuses_a_duplicate_email(runner, crm):
    args = ("user", "create", "--email", "dup@example.com", "--password-stdin")
    assert invoke(runner, *args, input=PASSWORD + "\n").exit_code == 0
    again = invoke(runner, *args, input=PASSWORD + "\n")
    assert again.exit_code == 1
    assert "Error: email: A user with this email exists already." in again.output
    with crm.session_factory() as session:
        count = session.scalar(
            select(func.count()).select_from(User).where(User.email == "dup@example.com")
        )
    assert count == 1


def test_user_create_refuses_an_unknown_role(runner, crm):
    result = invoke(runner, "user", "create", "--email", "r@example.com", "--role", "wizard",
                    "--password", PASSWORD)
    assert result.exit_code == 1
    assert "roles: No such role: wizard." in result.output
    assert stored_user(crm, "r@example.com") is None


def test_user_create_without_password_or_terminal_is_a_usage_error(runner):
    result = invoke(runner, "user", "create", "--email", "t@example.com")
    assert result.exit_code == 2
    assert "no password" in result.output


def test_user_create_prompts_twice_in_a_terminal(runner, crm, monkeypatch):
    monkeypatch.setattr("crm_core.cli.user._stdin_is_tty", lambda: True)
    result = invoke(runner, "user", "create", "--email", "p@example.com",
                    input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "Repeat for confirmation" in result.output
    user = stored_user(crm, "p@example.com")
    assert user is not None and user.check_password(PASSWORD)


# -- crm shell ---------------------------------------------------------------------------


def test_shell_namespace_has_crm_session_models_and_services(runner, crm):
    code = (
        "print('ns', crm is current_crm, type(session).__name__, Customer.__tablename__, "
        "customers.bulk_create.__name__, users.create.__name__)\n"
    )
    runner.app.shell_context_processor(lambda: {"current_crm": crm})
    result = invoke(runner, "shell", input=code)
    assert result.exit_code == 0, result.output
    assert "ns True Session customer bulk_create create" in result.output
