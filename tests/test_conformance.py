"""The conformance suite (crm_core.conformance): it passes for a plugin that keeps core's
rules and fails, naming the fix, for plugins that break one.

The broken plugins are packages in ``tests/plugins/conformance-fakes`` (see its README),
put on ``sys.path`` and loaded into the CRM under test as plugin modules: nothing is
installed. Each test runs one check of the suite on one of them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from crm_core.conformance import PluginConformance
from crm_core.plugins import PluginState

FAKES = Path(__file__).parent / "plugins" / "conformance-fakes"


class TestTestpluginConformance(PluginConformance):
    """crm-core's own test plugin keeps every rule: the whole suite passes."""

    plugin = "crm_testplugin"


@pytest.fixture
def crm_plugin_modules(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
                       ) -> Iterator[list[ModuleType]]:
    """The fake plugin named by the test's parameter (none without one)."""
    package = getattr(request, "param", None)
    if package is None:
        yield []
        return
    monkeypatch.syspath_prepend(str(FAKES))
    yield [importlib.import_module(f"{package}.plugin")]
    for name in [name for name in sys.modules if name.split(".")[0] == package]:
        del sys.modules[name]


def fake(package: str) -> Any:
    """Run the test with the fake plugin ``package`` loaded (and no installed plugin)."""
    def decorate(test: Any) -> Any:
        test = pytest.mark.parametrize("crm_plugin_modules", [package], indirect=True)(test)
        return pytest.mark.plugins()(test)
    return decorate


def suite(package: str) -> PluginConformance:
    """The conformance suite for the fake plugin ``package``."""
    return type("FakeConformance", (PluginConformance,), {"plugin": package})()


@fake("crm_fake_permission")
def test_an_undeclared_permission_fails(crm):
    with pytest.raises(AssertionError, match="crm_register_permissions") as failure:
        suite("crm_fake_permission").test_permissions_checked_are_declared(crm)
    message = str(failure.value)
    assert "'fake_permission.note.delete'" in message
    assert "crm_fake_permission/plugin.py:27" in message  # where it is checked
    assert "note.view'" not in message  # declared


@fake("crm_fake_hook")
def test_a_hookimpl_without_spec_fails(crm):
    assert crm.plugins.infos["crm_fake_hook"].state is PluginState.REFUSED
    with pytest.raises(AssertionError) as failure:
        suite("crm_fake_hook").test_hook_implementations_match_hookspecs(crm)
    message = str(failure.value)
    assert "crm_on_customer_created: implements crm_on_customer_created, which no hookspec" \
        in message
    assert "crm_sales_on_opportunity_won: implements crm_sales_on_opportunity_won, a hook of " \
        "the optional plugin crm_sales: mark it @hookimpl(optionalhook=True)" in message


@fake("crm_fake_table")
def test_unprefixed_names_fail(crm):
    with pytest.raises(AssertionError, match="names of crm_fake_table") as failure:
        suite("crm_fake_table").test_names_are_namespaced(crm)
    message = str(failure.value)
    assert "table 'points' does not start with 'fake_table_'" in message
    assert "blueprint 'pages' is not named 'crm_fake_table'" in message
    assert "template templates/index.html of blueprint 'pages' is not under " \
        "templates/crm_fake_table/" in message
    assert "hook 'on_points_given' (crm_addhooks)" in message
    assert "permission 'points.view' does not start with 'fake_table.'" in message


@fake("crm_fake_table")
def test_models_without_migrations_fail(crm):
    with pytest.raises(AssertionError, match="declares models but no migrations"):
        suite("crm_fake_table").test_migrations_form_the_plugins_own_branch(crm)


@fake("crm_fake_import")
def test_importing_internals_or_another_plugin_fails(crm):
    with pytest.raises(AssertionError) as failure:
        suite("crm_fake_import").test_imports_only_public_modules(crm)
    message = str(failure.value)
    assert "plugin.py:5: crm_testplugin.models belongs to another plugin" in message
    assert "plugin.py:8: crm_core.plugins is internal to crm-core" in message
    assert ": crm_core is internal" not in message  # crm_core itself is public


@fake("crm_fake_route")
def test_a_route_missing_from_openapi_fails(app, client):
    with pytest.raises(AssertionError, match="missing from the OpenAPI document") as failure:
        suite("crm_fake_route").test_api_routes_are_in_the_openapi_document(app, client)
    message = str(failure.value)
    assert "GET /api/v1/fake_route/things/<int:thing_id>" in message
    assert "GET /api/v1/fake_route/things " not in message  # documented


def test_an_incompatible_plugin_fails_the_manifest_check(crm):
    """crm-incompatible (installed by the tests) supports API 2 only: it is refused."""
    with pytest.raises(AssertionError, match="is refused, not enabled: supports crm_core API"):
        suite("crm_incompatible").test_manifest_is_valid_and_compatible(crm)


@fake("crm_fake_route")
def test_a_plugin_without_entry_point_fails_the_manifest_check(crm):
    with pytest.raises(AssertionError, match="has no entry point 'crm_fake_route'"):
        suite("crm_fake_route").test_manifest_is_valid_and_compatible(crm)
