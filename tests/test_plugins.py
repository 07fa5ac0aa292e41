"""The plugin system: discovery, manifests, allow/deny lists, order, hooks, isolation.

``crm-testplugin`` and ``crm-incompatible`` are real distributions installed (editable)
from ``tests/plugins/``, so discovery goes through their entry points. Edge cases use
the module plugins of ``tests/fakeplugins/``.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fakeplugins import (
    CALLS,
    bad_range,
    bad_subscriber,
    broken_addhooks,
    cycle_a,
    cycle_b,
    email_twin,
    misspelled,
    needs_missing,
    needs_needs_missing,
    no_manifest,
    optional_unknown,
    order_a,
    order_b,
    order_c,
    order_d,
    pigeon_twin,
    publisher,
    raising_hook,
    strict_subscriber,
    subscriber,
)
from sqlalchemy import event, func, select

from crm_core import API_VERSION, CRM, HookError, PluginError, ValidationError
from crm_core.config import load_settings
from crm_core.models import AuditEntry, Customer, OutboxEvent
from crm_core.plugins import PluginState
from crm_core.services import customers
from crm_core.testing import crm_test_settings

TESTPLUGIN_ROOT = Path(__file__).parent / "plugins" / "crm-testplugin" / "crm_testplugin"


def make_crm(tmp_path: Path, *modules: ModuleType, **settings: Any) -> CRM:
    """A CRM on a throw-away SQLite file (never connected to by these tests unless asked)."""
    return CRM(
        crm_test_settings(f"sqlite:///{tmp_path / 'crm.sqlite3'}", tmp_path, **settings),
        plugins=modules,
    )


def state(crm: CRM, name: str) -> PluginState:
    return crm.plugins.infos[name].state


def reason(crm: CRM, name: str) -> str:
    return crm.plugins.infos[name].reason


# -- discovery through entry points ------------------------------------------------------


def test_installed_plugin_is_discovered_with_its_distribution_version_and_hooks(tmp_path):
    crm = make_crm(tmp_path)
    info = crm.plugins.infos["crm_testplugin"]
    assert info.state is PluginState.ENABLED
    assert info.version == "1.2.0"
    assert info.distribution == "crm-testplugin"
    assert info.module is not None and info.module.__name__ == "crm_testplugin.plugin"
    assert info.manifest is not None and info.manifest.core_api == ">=1.0,<2"
    assert {
        "crm_on_customers_created",
        "crm_register_channels",
        "crm_register_commands",
        "crm_register_migrations",
        "crm_register_models",
        "crm_register_permissions",
    } <= set(info.hooks)
    assert crm.registry.channels["carrier_pigeon"].label == "Carrier pigeon"
    assert "testplugin.task.view" in crm.registry.permissions
    assert crm.registry.models["testplugin_welcome_task"] == "crm_testplugin"
    assert crm.registry.models["customer"] == "crm_core"
    assert crm.registry.migration_folders["crm_testplugin"] == [
        str(TESTPLUGIN_ROOT / "migrations" / "versions")
    ]


def test_plugin_for_another_core_api_is_refused_with_what_to_install(tmp_path):
    crm = make_crm(tmp_path)
    info = crm.plugins.infos["crm_incompatible"]
    assert info.state is PluginState.REFUSED
    assert info.distribution == "crm-incompatible"
    assert ">=2.0,<3" in info.reason
    assert f"API {API_VERSION}" in info.reason
    assert f"install a version of crm-incompatible made for crm_core API {API_VERSION}" \
        in info.reason
    # Nothing of it is registered: its channel is not there, its module not in pluggy.
    assert "telegraph" not in crm.registry.channels
    assert not crm.pm.is_registered(info.module)
    assert info not in crm.plugins.enabled


def test_strict_mode_makes_a_refused_plugin_fatal(tmp_path):
    with pytest.raises(PluginError, match="crm_incompatible") as excinfo:
        make_crm(tmp_path, strict_plugins=True)
    assert excinfo.value.plugin == "crm_incompatible"
    assert ">=2.0,<3" in excinfo.value.message
    # Left out by the allow-list, it is disabled rather than refused: strict mode is fine.
    crm = make_crm(tmp_path, strict_plugins=True, plugins=["crm_testplugin"])
    assert state(crm, "crm_incompatible") is PluginState.DISABLED
    assert state(crm, "crm_testplugin") is PluginState.ENABLED


def test_plugin_failing_to_import_is_refused_and_skipped(tmp_path, monkeypatch):
    # A real distribution on sys.path (a dist-info folder with an entry point) whose
    # plugin module raises when imported.
    site = tmp_path / "site"
    dist_info = site / "crm_broken_fake-0.4.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: crm-broken-fake\nVersion: 0.4\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(
        "[crm_core.plugins]\ncrm_broken_fake = crm_broken_fake\n", encoding="utf-8"
    )
    (site / "crm_broken_fake.py").write_text(
        textwrap.dedent(
            """
            from crm_core import hookimpl

            raise RuntimeError("this plugin is broken")
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(site))

    crm = make_crm(tmp_path)
    info = crm.plugins.infos["crm_broken_fake"]
    assert info.state is PluginState.REFUSED
    assert (info.version, info.distribution) == ("0.4", "crm-broken-fake")
    assert info.reason == "failed to import: RuntimeError: this plugin is broken"
    assert "crm_broken_fake" not in sys.modules
    assert state(crm, "crm_testplugin") is PluginState.ENABLED

    with pytest.raises(PluginError, match="this plugin is broken"):
        make_crm(tmp_path, strict_plugins=True, plugins=["crm_broken_fake"])


# -- allow-list and deny-list ----------------------------------------------------------


def test_allow_list_from_the_environment_enables_only_the_plugins_named(tmp_path):
    settings = load_settings(
        {"database_url": f"sqlite:///{tmp_path / 'crm.sqlite3'}", "instance_path": str(tmp_path)},
        environ={"CRM_PLUGINS": "CRM-TestPlugin", "CRM_SECRET_KEY": "x" * 32},
    )
    crm = CRM(settings)
    assert state(crm, "crm_testplugin") is PluginState.ENABLED
    assert state(crm, "crm_incompatible") is PluginState.DISABLED
    assert reason(crm, "crm_incompatible") == "not in the allow-list (CRM_PLUGINS)"
    # Disabled before import: its manifest was never read, so it was never refused.
    assert crm.plugins.infos["crm_incompatible"].manifest is None


def test_empty_allow_list_enables_no_installed_plugin(tmp_path):
    crm = make_crm(tmp_path, plugins=[])
    assert crm.plugins.enabled == []
    assert {state(crm, name) for name in ("crm_testplugin", "crm_incompatible")} == {
        PluginState.DISABLED
    }
    assert "carrier_pigeon" not in crm.registry.channels
    assert "testplugin_welcome_task" not in crm.registry.models
    assert "crm_testplugin" not in crm.registry.migration_folders
    assert not crm.pm.hook.crm_on_customers_created.get_hookimpls()


def test_deny_list_disables_an_installed_plugin_and_a_plugin_passed_in_code(tmp_path):
    crm = make_crm(
        tmp_path,
        optional_unknown,
        disabled_plugins=["crm-testplugin", "fake_optional_unknown"],
    )
    assert state(crm, "crm_testplugin") is PluginState.DISABLED
    assert reason(crm, "crm_testplugin") == "in the deny-list (CRM_DISABLED_PLUGINS)"
    assert state(crm, "fake_optional_unknown") is PluginState.DISABLED
    assert "carrier_pigeon" not in crm.registry.channels
    # The deny-list wins over the allow-list.
    crm = make_crm(tmp_path, plugins=["crm_testplugin"], disabled_plugins=["crm_testplugin"])
    assert state(crm, "crm_testplugin") is PluginState.DISABLED


def test_plugins_passed_in_code_are_enabled_whatever_the_allow_list_says(tmp_path):
    crm = make_crm(tmp_path, optional_unknown, plugins=[])
    assert [info.name for info in crm.plugins.enabled] == ["fake_optional_unknown"]
    assert state(crm, "crm_testplugin") is PluginState.DISABLED


# -- manifests and dependencies ----------------------------------------------------------


def test_module_without_manifest_or_with_a_bad_range_is_refused(tmp_path):
    crm = make_crm(tmp_path, no_manifest, bad_range, optional_unknown, plugins=[])
    assert state(crm, "fake_no_manifest") is PluginState.REFUSED
    assert "manifest = PluginManifest(...)" in reason(crm, "fake_no_manifest")
    assert state(crm, "fake_bad_range") is PluginState.REFUSED
    assert "'one point oh' is not a version range" in reason(crm, "fake_bad_range")
    assert state(crm, "fake_optional_unknown") is PluginState.ENABLED


def test_missing_required_plugin_is_refused_and_the_refusal_propagates(tmp_path):
    crm = make_crm(tmp_path, needs_needs_missing, needs_missing, plugins=[])
    assert state(crm, "fake_needs_missing") is PluginState.REFUSED
    assert reason(crm, "fake_needs_missing") == (
        "requires plugin 'crm_nonexistent', which is not installed: install it "
        "(pip install crm-nonexistent)"
    )
    assert state(crm, "fake_needs_needs_missing") is PluginState.REFUSED
    assert reason(crm, "fake_needs_needs_missing").startswith(
        "requires plugin 'fake-needs-missing', which is refused (requires plugin 'crm_nonexistent'"
    )
    assert crm.plugins.enabled == []


def test_requiring_a_disabled_plugin_says_so(tmp_path):
    crm = make_crm(
        tmp_path, needs_needs_missing, needs_missing, disabled_plugins=["fake_needs_missing"]
    )
    assert reason(crm, "fake_needs_needs_missing") == (
        "requires plugin 'fake-needs-missing', which is disabled "
        "(in the deny-list (CRM_DISABLED_PLUGINS))"
    )


def test_missing_required_plugin_is_fatal_in_strict_mode(tmp_path):
    with pytest.raises(PluginError, match="pip install crm-nonexistent") as excinfo:
        make_crm(tmp_path, needs_missing, plugins=[], strict_plugins=True)
    assert excinfo.value.plugin == "fake_needs_missing"


def test_dependency_cycle_refuses_its_plugins(tmp_path):
    crm = make_crm(tmp_path, cycle_a, cycle_b, optional_unknown, plugins=[])
    for name in ("fake_cycle_a", "fake_cycle_b"):
        assert state(crm, name) is PluginState.REFUSED
        assert "depend on each other in a cycle" in reason(crm, name)
    assert [info.name for info in crm.plugins.enabled] == ["fake_optional_unknown"]
    with pytest.raises(PluginError, match="cycle"):
        make_crm(tmp_path, cycle_a, cycle_b, plugins=[], strict_plugins=True)


def test_load_order_is_topological_with_ties_by_name_and_hooks_run_in_it(tmp_path):
    expected = ["fake_order_c", "fake_order_d", "fake_order_a", "fake_order_b"]
    for modules in ((order_a, order_b, order_c, order_d), (order_d, order_b, order_c, order_a)):
        CALLS.clear()
        crm = make_crm(tmp_path, *modules, plugins=[])
        assert [info.name for info in crm.plugins.enabled] == expected
        # pluggy calls the plugin registered last first; the registry registers in
        # reverse, so a dependency's hook runs before its dependents'.
        assert expected == CALLS
        callers = [impl.plugin_name for impl in crm.pm.hook.crm_startup.get_hookimpls()]
        assert list(reversed(callers)) == expected
    # Core's own implementations run before every plugin's.
    crm = make_crm(tmp_path, order_c, plugins=[])
    impls = crm.pm.hook.crm_register_channels.get_hookimpls()
    assert [impl.plugin_name for impl in reversed(impls)] == ["crm_core"]
    crm = make_crm(tmp_path)
    impls = crm.pm.hook.crm_register_channels.get_hookimpls()
    assert [impl.plugin_name for impl in reversed(impls)] == ["crm_core", "crm_testplugin"]


# -- hook names ------------------------------------------------------------------------


def test_misspelled_hook_refuses_the_plugin(tmp_path):
    crm = make_crm(tmp_path, misspelled, optional_unknown, plugins=[])
    assert state(crm, "fake_misspelled") is PluginState.REFUSED
    assert "unknown hook 'crm_on_customer_created' (misspelled?" in reason(crm, "fake_misspelled")
    assert not crm.pm.is_registered(misspelled)
    # An unknown hook marked optional is fine: it belongs to a plugin not installed.
    assert state(crm, "fake_optional_unknown") is PluginState.ENABLED
    assert "crm_on_lead_converted" in crm.plugins.infos["fake_optional_unknown"].hooks
    with pytest.raises(PluginError, match="crm_on_customer_created"):
        make_crm(tmp_path, misspelled, plugins=[], strict_plugins=True)


def test_a_plugin_adds_a_hook_that_other_plugins_implement(tmp_path):
    crm = make_crm(tmp_path, subscriber, strict_subscriber, publisher, plugins=[])
    assert [info.name for info in crm.plugins.enabled] == [
        "fake_publisher",
        "fake_strict_subscriber",
        "fake_subscriber",
    ]
    # Both run, in load order.
    assert crm.pm.hook.crm_fake_ping(value=4) == [40, 5]
    assert "crm_fake_ping" in crm.plugins.infos["fake_strict_subscriber"].hooks


def test_implementing_a_hook_of_an_absent_plugin_needs_optionalhook(tmp_path):
    crm = make_crm(tmp_path, subscriber, strict_subscriber, plugins=[])
    # Optional: loaded, its implementation simply never called.
    assert state(crm, "fake_subscriber") is PluginState.ENABLED
    # Required and absent: refused for the missing dependency.
    assert state(crm, "fake_strict_subscriber") is PluginState.REFUSED
    assert "fake_publisher" in reason(crm, "fake_strict_subscriber")


def test_implementation_not_matching_a_published_hook_refuses_only_its_plugin(tmp_path):
    crm = make_crm(tmp_path, bad_subscriber, subscriber, publisher, plugins=[])
    assert state(crm, "fake_bad_subscriber") is PluginState.REFUSED
    assert "crm_fake_ping" in reason(crm, "fake_bad_subscriber")
    assert "nonsense" in reason(crm, "fake_bad_subscriber")
    assert state(crm, "fake_publisher") is PluginState.ENABLED
    assert crm.pm.hook.crm_fake_ping(value=1) == [2]


def test_plugin_whose_addhooks_raises_is_refused_alone(tmp_path):
    crm = make_crm(tmp_path, broken_addhooks, publisher, subscriber, plugins=[])
    assert state(crm, "fake_broken_addhooks") is PluginState.REFUSED
    assert reason(crm, "fake_broken_addhooks") == (
        "crm_addhooks failed: ValueError: no hookspecs today"
    )
    assert crm.pm.hook.crm_fake_ping(value=1) == [2]


# -- registrations ---------------------------------------------------------------------


def test_two_plugins_registering_one_channel_is_an_error(tmp_path):
    with pytest.raises(PluginError, match="'carrier_pigeon', which is already registered") as e:
        make_crm(tmp_path, pigeon_twin)
    # Blame goes to the plugin that loads later (by name: fake_... after crm_testplugin).
    assert e.value.plugin == "fake_pigeon_twin"
    # Without crm-testplugin, the twin's channel is fine.
    crm = make_crm(tmp_path, pigeon_twin, plugins=[])
    assert crm.registry.channels["carrier_pigeon"].label == "Another pigeon"


def test_a_plugin_taking_a_core_channel_name_is_blamed_not_core(tmp_path):
    with pytest.raises(PluginError, match="'email', which is already registered") as excinfo:
        make_crm(tmp_path, email_twin, plugins=[])
    assert excinfo.value.plugin == "fake_email_twin"


# -- the test plugin at work (database tests: SQLite and PostgreSQL) -------------------


def _count(uow, model) -> int:
    return uow.session.scalar(select(func.count()).select_from(model))


@pytest.mark.plugins("crm_testplugin")
def test_testplugin_creates_welcome_tasks_in_one_statement_per_batch(crm):
    from crm_testplugin.models import WelcomeTask

    inserts: list[tuple[str, bool]] = []

    def watch(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO TESTPLUGIN_WELCOME_TASK"):
            inserts.append((statement, executemany))

    event.listen(crm.engine, "before_cursor_execute", watch)
    try:
        with crm.unit_of_work() as uow:
            acme = customers.create(uow, {"name": "ACME"})
            tasks = uow.session.scalars(select(WelcomeTask)).all()
            assert [(t.customer_id, t.title) for t in tasks] == [(acme.id, "Welcome ACME")]
            assert tasks[0].created_at.tzinfo is not None
            inserts.clear()

            result = customers.bulk_create(
                uow, [{"name": "Globex"}, {"name": ""}, {"name": "Initech"}, {"name": "Umbrella"}]
            )
            assert list(result.errors) == [1]
            created = {c.id: c.name for c in result.records}
            rows = uow.session.execute(
                select(WelcomeTask.customer_id, WelcomeTask.title).where(
                    WelcomeTask.customer_id.in_(created)
                )
            ).all()
            assert sorted(rows) == sorted((i, f"Welcome {n}") for i, n in created.items())
    finally:
        event.remove(crm.engine, "before_cursor_execute", watch)
    # One executemany for the batch of three.
    assert [executemany for _statement, executemany in inserts] == [True]


@pytest.mark.plugins("crm_testplugin")
def test_welcome_tasks_go_with_their_customer(crm):
    from crm_testplugin.models import WelcomeTask

    with crm.unit_of_work() as uow:
        acme = customers.create(uow, {"name": "ACME"})
        uow.session.delete(uow.session.get(Customer, acme.id))
        uow.session.flush()
        assert _count(uow, WelcomeTask) == 0


@pytest.mark.plugins()
def test_without_the_plugin_no_welcome_task_is_made(crm):
    from crm_testplugin.models import WelcomeTask

    with crm.unit_of_work() as uow:
        before = _count(uow, WelcomeTask)
        customers.create(uow, {"name": "ACME"})
        # The shared test database has the plugin's table, but nobody writes to it.
        assert _count(uow, WelcomeTask) == before


@pytest.mark.plugins("crm_testplugin")
def test_testplugin_command_runs_in_the_crm_cli(crm, app, runner):
    from crm_core.cli import cli

    def tasks() -> int:
        result = runner.invoke(cli, ["testplugin-tasks"])
        assert result.exit_code == 0, result.output
        count, label = result.output.strip().split(" ", 1)
        assert label == "welcome tasks"
        return int(count)

    before = tasks()
    with crm.unit_of_work() as uow:
        customers.bulk_create(uow, [{"name": "ACME"}, {"name": "Globex"}])
    assert tasks() == before + 2
    listed = runner.invoke(cli, ["--help"])
    assert "testplugin-tasks" in listed.output


# -- a raising hook rolls the write back ---------------------------------------------


@pytest.mark.plugins()
class TestRaisingHook:
    """A plugin whose hook raises during a write (with another plugin of the same package)."""

    @pytest.fixture
    def crm_plugin_modules(self):
        # Two plugins from one package: the blame must still name the one that raised.
        return [raising_hook, subscriber]

    def test_rolls_back_the_write_and_names_the_plugin(self, crm):
        def counts() -> tuple[int, int, int]:
            with crm.unit_of_work() as uow:
                return (_count(uow, Customer), _count(uow, AuditEntry), _count(uow, OutboxEvent))

        before = counts()
        with pytest.raises(HookError) as excinfo, crm.unit_of_work() as uow:
            customers.create(uow, {"name": "ACME"})
        error = excinfo.value
        assert error.plugin == "fake_raising"
        assert error.hook == "crm_on_customers_created"
        assert isinstance(error.__cause__, RuntimeError)
        assert "boom after 1 customers" in str(error)
        assert counts() == before
        # The same for a bulk write: nothing of the batch stays.
        with pytest.raises(HookError, match="boom after 2 customers"), crm.unit_of_work() as uow:
            customers.bulk_create(uow, [{"name": "A"}, {"name": "B"}])
        assert counts() == before
        # Without the raising plugin the same write goes through, with its audit and event.
        crm.pm.unregister(raising_hook)
        with crm.unit_of_work() as uow:
            customers.create(uow, {"name": "ACME"})
        assert counts() == (before[0] + 1, before[1] + 1, before[2] + 1)
        # Validation errors stay validation errors, before any hook ran.
        with pytest.raises(ValidationError), crm.unit_of_work() as uow:
            customers.create(uow, {"name": ""})
