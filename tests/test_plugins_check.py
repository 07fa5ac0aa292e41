"""``crm plugins check``: compatibility and deprecations of every installed plugin, exit status."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import Result
from fakeplugins import deprecating_publisher, late_pinger, old_pinger, publisher
from flask import Flask

from crm_core import API_VERSION
from crm_core.cli import cli


@pytest.fixture
def make_app(crm_database_url: str, tmp_path: Path) -> Iterator[object]:
    """Build apps with only the given plugin modules (no installed plugin is discovered)."""
    from crm_core.web.app import create_app

    apps: list[Flask] = []

    def build(*modules: ModuleType, discover: bool = False) -> Flask:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            app = create_app(
                {"database_url": crm_database_url, "instance_path": str(tmp_path)},
                plugins=modules, discover_plugins=discover,
            )
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["crm"].dispose()


def check(app: Flask, *args: str) -> Result:
    """Run ``crm plugins check ARGS`` against ``app``."""
    return app.test_cli_runner().invoke(cli, ["plugins", "check", *args])


def rows(output: str) -> dict[str, list[str]]:
    """The report's table rows by plugin name."""
    lines = output.split("\n\n")[0].splitlines()
    return {line.split()[0]: line.split() for line in lines[1:]}


def test_compatible_plugins_pass(make_app) -> None:
    app = make_app(deprecating_publisher, publisher)
    result = check(app)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].split() == [
        "name", "version", "state", "core_api", "compatible", "deprecated",
    ]
    assert rows(result.output)["fake_publisher"][2:] == ["enabled", ">=1.0,<2", "yes", "0"]
    assert result.output.endswith(f"Every plugin works with crm_core API {API_VERSION}.\n")


def test_a_hook_removed_in_the_next_major_version_fails_the_check(make_app) -> None:
    result = check(make_app(deprecating_publisher, old_pinger))
    assert result.exit_code == 1, result.output
    assert rows(result.output)["fake_old_pinger"][-1] == "2"
    assert (
        "fake_old_pinger: implements hook crm_fake_old_ping, deprecated since API 1.1 and "
        "removed in 2.0 (the next major version): use crm_fake_new_ping" in result.output
    )
    assert "removed in 3.0: use crm_fake_new_ping" in result.output
    assert result.output.rstrip().endswith(": fake_old_pinger")


def test_a_hook_removed_two_majors_ahead_is_reported_only(make_app) -> None:
    result = check(make_app(deprecating_publisher, late_pinger))
    assert result.exit_code == 0, result.output
    assert "fake_late_pinger: implements hook crm_fake_late_ping" in result.output


def test_json_lists_compatibility_and_deprecations(make_app) -> None:
    result = check(make_app(deprecating_publisher, old_pinger), "--json")
    assert result.exit_code == 1
    by_name = {item["name"]: item for item in json.loads(result.stdout)}
    old = by_name["fake_old_pinger"]
    assert old["compatible"] is True
    assert old["ok"] is False
    assert old["refused"] == ""
    assert [(d["hook"], d["since"], d["removed_in"], d["use_instead"])
            for d in old["deprecated_hooks"]] == [
        ("crm_fake_late_ping", "1.1", "3.0", "crm_fake_new_ping"),
        ("crm_fake_old_ping", "1.1", "2.0", "crm_fake_new_ping"),
    ]
    assert old["deprecated_names"] == []
    assert by_name["fake_deprecating_publisher"]["ok"] is True


def test_installed_plugins_are_checked_and_refused_ones_fail(make_app) -> None:
    result = check(make_app(discover=True), "--json")
    by_name = {item["name"]: item for item in json.loads(result.stdout)}
    assert by_name["crm_testplugin"]["compatible"] is True
    incompatible = by_name["crm_incompatible"]
    assert incompatible["compatible"] is False
    assert incompatible["core_api"] == ">=2.0,<3"
    assert f"this crm-core provides API {API_VERSION}" in incompatible["refused"]
    assert result.exit_code == 1

    report = check(make_app(discover=True))
    assert "crm_incompatible: incompatible: supports crm_core API >=2.0,<3" in report.output
    assert report.exit_code == 1


@pytest.mark.plugins()
def test_plugins_the_allow_list_leaves_out_are_checked_too(runner) -> None:
    result = runner.invoke(args=["plugins", "check", "--json"])
    by_name = {item["name"]: item for item in json.loads(result.output)}
    assert by_name["crm_testplugin"]["state"] == "disabled"
    assert by_name["crm_testplugin"]["ok"] is True
    assert by_name["crm_incompatible"]["ok"] is False


def test_no_plugins(make_app) -> None:
    app = make_app()
    assert check(app).output == "No plugins installed.\n"
    assert check(app).exit_code == 0
    assert json.loads(check(app, "--json").output) == []


def test_plain_listing_still_works_beside_check(make_app) -> None:
    app = make_app(publisher)
    listed: Sequence[dict[str, object]] = json.loads(
        app.test_cli_runner().invoke(cli, ["plugins", "--json"]).output
    )
    assert [item["name"] for item in listed] == ["fake_publisher"]
    assert "check" in app.test_cli_runner().invoke(cli, ["plugins", "--help"]).output
