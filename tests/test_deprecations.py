"""Deprecations: the registry, pluggy's ``warn_on_impl`` on hookspecs, the decorator, the check.

No real hook or name is deprecated today, so the mechanism is proven with the
test-only hookspecs of ``fakeplugins.deprecating_hooks`` and ``fakeplugins.old_api``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest
from fakeplugins import (
    bad_range,
    deprecating_hooks,
    deprecating_publisher,
    late_pinger,
    old_api,
    old_pinger,
    publisher,
)

from crm_core import CRM, hookspec, hookspecs
from crm_core.compatibility import check_plugins, deprecated_names_used
from crm_core.deprecations import (
    HOOKS,
    NAMES,
    CRMDeprecationWarning,
    Deprecation,
    deprecate_hookspecs,
    deprecation_of,
)
from crm_core.testing import crm_test_settings

SPEC = f"{hookspecs.PROJECT_NAME}_spec"


def make_crm(tmp_path: Path, *modules: ModuleType) -> CRM:
    """A CRM with only ``modules`` as plugins (never connected to by these tests)."""
    return CRM(
        crm_test_settings(f"sqlite:///{tmp_path / 'crm.sqlite3'}", tmp_path),
        plugins=modules,
        discover_plugins=False,
    )


# -- the registry ----------------------------------------------------------------------------


def test_message_names_the_removal_version_and_the_replacement() -> None:
    assert deprecating_hooks.OLD_PING.message == (
        "crm_fake_old_ping is deprecated since crm_core API 1.1 and will be removed in "
        "API 2.0; use crm_fake_new_ping instead"
    )


@pytest.mark.parametrize(
    ("since", "removed_in", "problem"),
    [
        ("1.1", "1.2", "not a major version"),
        ("1.1", "2.1", "not a major version"),
        ("2.0", "2.0", "later major version"),
        ("1.1", "soon", "Invalid version"),
    ],
)
def test_deprecations_are_removed_only_in_a_later_major_version(
    since: str, removed_in: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        Deprecation("crm_x", since=since, removed_in=removed_in, use_instead="crm_y")


@pytest.mark.parametrize(
    ("removed_in", "api_version", "removed"),
    [("2.0", "1.1", True), ("2.0", "2.0", True), ("3.0", "1.1", False), ("3.0", "2.3", True)],
)
def test_removed_by_looks_one_major_version_ahead(
    removed_in: str, api_version: str, removed: bool
) -> None:
    deprecation = Deprecation("crm_x", since="1.0", removed_in=removed_in, use_instead="crm_y")
    assert deprecation.removed_by(api_version) is removed


def test_core_registry_entries_are_real_hookspecs_and_marked() -> None:
    # Empty today; once a hook is deprecated, this proves its spec warns.
    for name, deprecation in HOOKS.items():
        spec = getattr(getattr(hookspecs, name), SPEC)
        assert isinstance(spec["warn_on_impl"], CRMDeprecationWarning)
        assert deprecation.removed_in in str(spec["warn_on_impl"])
    for name in NAMES:
        module, _, attribute = name.rpartition(".")
        assert hasattr(sys.modules.get(module) or __import__(module), attribute), name


# -- hookspecs -------------------------------------------------------------------------------


def test_deprecated_hookspec_keeps_its_options_and_warns_with_the_removal_version() -> None:
    options = getattr(deprecating_hooks.crm_fake_old_ping, SPEC)
    assert options["firstresult"] is True
    warning = options["warn_on_impl"]
    assert isinstance(warning, CRMDeprecationWarning)
    assert "removed in API 2.0" in str(warning)
    assert deprecation_of(deprecating_hooks.crm_fake_old_ping) is deprecating_hooks.OLD_PING
    assert getattr(deprecating_hooks.crm_fake_new_ping, SPEC)["warn_on_impl"] is None
    assert deprecation_of(deprecating_hooks.crm_fake_new_ping) is None


def test_deprecating_an_unknown_hookspec_is_an_error() -> None:
    stale = Deprecation("crm_fake_gone", since="1.0", removed_in="2.0", use_instead="nothing")
    with pytest.raises(ValueError, match="has no hookspec 'crm_fake_gone'"):
        deprecate_hookspecs(deprecating_hooks, hookspec, [stale])


def test_implementing_a_deprecated_hook_warns_at_the_implementation(tmp_path: Path) -> None:
    with pytest.warns(CRMDeprecationWarning) as caught:
        crm = make_crm(tmp_path, deprecating_publisher, old_pinger)
    messages = {str(w.message): w for w in caught}
    old = messages[deprecating_hooks.OLD_PING.message]
    assert old.filename == old_pinger.__file__
    assert deprecating_hooks.LATE_PING.message in messages
    # Deprecated, not broken: the plugin loads and its hook is called.
    assert [info.name for info in crm.plugins.enabled] == [
        "fake_deprecating_publisher", "fake_old_pinger",
    ]
    with pytest.warns(CRMDeprecationWarning, match="removed in API 2.0"):
        assert crm.pm.hook.crm_fake_old_ping(value=2) == 4


def test_implementing_current_hooks_does_not_warn(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        make_crm(tmp_path, deprecating_publisher, publisher)


# -- deprecated functions --------------------------------------------------------------------


def test_deprecated_function_warns_at_the_caller_and_still_works() -> None:
    with pytest.warns(CRMDeprecationWarning, match="removed in API 2.0; use fakeplugins") as w:
        assert old_api.old_double(3) == 6
    assert w[0].filename == __file__
    assert old_api.old_double.__name__ == "old_double"
    assert old_api.old_double.__doc__ == "Twice ``value``, the old way."
    assert deprecation_of(old_api.old_double) is old_api.OLD_DOUBLE


def test_deprecation_warnings_can_be_made_errors() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CRMDeprecationWarning)
        with pytest.raises(CRMDeprecationWarning):
            old_api.old_double(1)


# -- crm plugins check, the function -----------------------------------------------------------


def test_check_reports_deprecated_hooks_and_names_per_plugin(tmp_path: Path) -> None:
    with pytest.warns(CRMDeprecationWarning):
        crm = make_crm(tmp_path, deprecating_publisher, old_pinger, late_pinger)
    names = {old_api.OLD_DOUBLE.name: old_api.OLD_DOUBLE}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the check reports, it does not warn
        checks = {c.name: c for c in check_plugins(crm.plugins, names=names)}
    assert sorted(checks) == ["fake_deprecating_publisher", "fake_late_pinger", "fake_old_pinger"]

    old = checks["fake_old_pinger"]
    assert old.compatible is True
    assert [use.deprecation for use in old.hooks] == [
        deprecating_hooks.LATE_PING, deprecating_hooks.OLD_PING,
    ]
    line = old_pinger.crm_fake_old_ping.__code__.co_firstlineno
    assert old.hooks[1].where == f"{old_pinger.__file__}:{line}"
    assert [use.deprecation for use in old.removed_soon] == [deprecating_hooks.OLD_PING]
    assert [(use.deprecation, Path(use.where.split(":")[0]).name) for use in old.names] == [
        (old_api.OLD_DOUBLE, "old_pinger.py"),
    ]
    assert not old.ok

    late = checks["fake_late_pinger"]
    assert [use.deprecation for use in late.hooks] == [deprecating_hooks.LATE_PING]
    assert late.names == []  # plugins sharing a package: only their own module is read
    assert late.ok, "a hook removed two majors ahead is reported, not fatal"
    assert checks["fake_deprecating_publisher"].ok


def test_check_looks_two_majors_ahead_when_asked(tmp_path: Path) -> None:
    with pytest.warns(CRMDeprecationWarning):
        crm = make_crm(tmp_path, deprecating_publisher, late_pinger)
    late = {c.name: c for c in check_plugins(crm.plugins, api_version="2.0")}["fake_late_pinger"]
    assert late.compatible is False  # its range is >=1.0,<2
    assert [use.deprecation for use in late.removed_soon] == [deprecating_hooks.LATE_PING]
    assert not late.ok


def test_check_covers_refused_and_disabled_plugins(tmp_path: Path) -> None:
    crm = CRM(
        crm_test_settings(f"sqlite:///{tmp_path / 'crm.sqlite3'}", tmp_path,
                          disabled_plugins=("fake_publisher",)),
        plugins=[publisher, bad_range],
        discover_plugins=False,
    )
    checks = {c.name: c for c in check_plugins(crm.plugins)}
    assert checks["fake_publisher"].state == "disabled"
    assert checks["fake_publisher"].ok, "checked although the deny-list disables it"
    bad = checks["fake_bad_range"]
    assert bad.state == "refused"
    assert bad.compatible is False
    assert "not a version range" in bad.refused
    assert not bad.ok


def test_names_are_found_in_imports_and_dotted_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "crm_fakepkg_names"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(
        "import crm_core\n"
        "from crm_core import old_thing as thing, CRM\n"
        "import crm_core.old_module\n"
        "from . import old_thing\n"
        "value = crm_core.old_thing\n"
    )
    (package / "other.py").write_text("def f():\n    return crm_core.old_thing()\n")
    (package / "syntax_error.py").write_text("def (:\n")
    top = ModuleType("crm_fakepkg_names")
    top.__path__ = [str(package)]  # type: ignore[attr-defined]
    plugin = ModuleType("crm_fakepkg_names.plugin")
    plugin.__file__ = str(package / "plugin.py")
    monkeypatch.setitem(sys.modules, "crm_fakepkg_names", top)
    registry = {
        name: Deprecation(name, since="1.1", removed_in="2.0", use_instead="crm_core.new")
        for name in ("crm_core.old_thing", "crm_core.old_module")
    }
    found = sorted(
        (Path(use.where).name, use.deprecation.name)
        for use in deprecated_names_used(plugin, registry)
    )
    # The whole package is read; relative imports and a file that does not parse are not.
    assert found == [
        ("other.py:2", "crm_core.old_thing"),
        ("plugin.py:2", "crm_core.old_thing"),
        ("plugin.py:3", "crm_core.old_module"),
        ("plugin.py:5", "crm_core.old_thing"),
    ]
    assert [Path(use.where).name for use in deprecated_names_used(plugin, registry, shared=True)
            ] == ["plugin.py:2", "plugin.py:3", "plugin.py:5"]
    assert deprecated_names_used(plugin, {}) == []
