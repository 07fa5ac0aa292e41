"""The conformance suite: what core expects of every plugin, as one pytest class.

A plugin runs it with one line in its tests::

    from crm_core.conformance import PluginConformance

    class TestConformance(PluginConformance):
        plugin = "crm_sales"          # the plugin's entry point name

Each ``test_*`` method checks one promise (the manifest, the migration branch, names,
permissions, hooks, the API, imports) and fails with what to fix. The tests use the
fixtures of :mod:`crm_core.testing`; the CRM under test loads the plugin and the plugins
it requires (nothing else), and runs on SQLite and PostgreSQL. docs/plugins.md
("Conformance") explains each check.

Optional class attributes: ``import_name`` (the plugin's package, when it is not the
top-level package of its plugin module) and ``prefix`` (of its tables, ``<prefix>_``,
and permissions, ``<prefix>.``; default the plugin's name without ``crm_``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version
from sqlalchemy import inspect

from crm_core import migrate
from crm_core.config import normalise_plugin_name
from crm_core.conformance.hooks import added_hookspecs, hook_problems
from crm_core.conformance.imports import PUBLIC_MODULES, forbidden_imports
from crm_core.conformance.migrations import branch_problems
from crm_core.conformance.permissions import checked_permissions
from crm_core.conformance.routes import plugin_api_rules, undocumented
from crm_core.conformance.subject import Subject, installed_plugins, plugin_module, subject_of
from crm_core.ids import MAX_ID
from crm_core.plugins import ENTRY_POINT_GROUP, PluginManifest, PluginState
from crm_core.runtime import CRM
from crm_core.testing import crm_test_settings

__all__ = ["PUBLIC_MODULES", "PluginConformance"]

#: Files of a plugin's package that may check permissions besides its Python code.
TEMPLATE_SUFFIXES = (".html", ".jinja", ".j2", ".txt")


def _report(problems: list[str], headline: str) -> str:
    return f"{headline}:\n  " + "\n  ".join(problems)


class PluginConformance:
    """Subclass it in your plugin's tests and set ``plugin``: the checks run as tests."""

    plugin: str = ""
    """The plugin's entry point name (``crm_sales``)."""
    import_name: str | None = None
    """The plugin's top-level package, when it differs from its plugin module's."""
    prefix: str | None = None
    """Prefix of its tables and permissions; default the name without ``crm_``."""

    # -- fixtures -----------------------------------------------------------------------

    def _plugin_name(self) -> str:
        assert self.plugin, f"{type(self).__name__}: set the class attribute `plugin`"
        return normalise_plugin_name(self.plugin)

    def _enabled(self) -> list[str]:
        """The plugin and the plugins it requires (read from its installed manifest)."""
        name = self._plugin_name()
        module = plugin_module(name)
        manifest = getattr(module, "manifest", None)
        requires = manifest.requires if isinstance(manifest, PluginManifest) else ()
        return [name, *(normalise_plugin_name(required) for required in requires)]

    @pytest.fixture
    def crm_settings_overrides(self) -> dict[str, Any]:
        """The CRM under test loads the plugin and its requirements only."""
        return {"plugins": self._enabled()}

    @pytest.fixture
    def conformance_crm(self, fresh_database_url: str, tmp_path: Path,
                        crm_plugin_modules: list[Any]) -> Iterator[CRM]:
        """A CRM on an empty database with the plugin (and its requirements) enabled."""
        settings = crm_test_settings(fresh_database_url, tmp_path / "instance",
                                     plugins=self._enabled())
        crm = CRM(settings, plugins=crm_plugin_modules)
        yield crm
        crm.dispose()

    def subject(self, crm: CRM) -> Subject:
        """The plugin under test as ``crm`` loaded it."""
        return subject_of(crm, self._plugin_name(), self.import_name, self.prefix)

    # -- the manifest ------------------------------------------------------------------

    def test_manifest_is_valid_and_compatible(self, crm: CRM) -> None:
        """Discovered through its entry point, enabled with this core's API version, and
        described by a manifest whose ``core_api`` range contains ``API_VERSION``."""
        from crm_core.version import API_VERSION

        name = self._plugin_name()
        assert name in installed_plugins(), (
            f"plugin {name} has no entry point {name!r} in the group {ENTRY_POINT_GROUP!r}: "
            f'add [project.entry-points."{ENTRY_POINT_GROUP}"] {name} = "<package>.plugin" '
            "to its pyproject.toml and install it (pip install -e .)"
        )
        subject = self.subject(crm)
        info = subject.info
        assert info.state is PluginState.ENABLED, (
            f"plugin {name} is {info.state.value}, not enabled: {info.reason}"
        )
        manifest = subject.manifest
        assert manifest.description.strip(), (
            f"plugin {name}: give its PluginManifest a description (one sentence, shown by "
            "`crm plugins` and on the admin page)"
        )
        try:
            supported = SpecifierSet(manifest.core_api)
        except InvalidSpecifier:
            pytest.fail(f"plugin {name}: core_api {manifest.core_api!r} is no version range")
        assert Version(API_VERSION) in supported, (
            f"plugin {name}: core_api {manifest.core_api!r} excludes this core's API "
            f"{API_VERSION}; widen it (e.g. '>=1.0,<2') once the plugin works with it"
        )

    # -- migrations --------------------------------------------------------------------

    def test_migrations_form_the_plugins_own_branch(self, crm: CRM) -> None:
        """One first revision labelled with the plugin's name; ``depends_on`` only core's
        (not core's head) or a required plugin's revisions."""
        subject = self.subject(crm)
        models = subject.own("crm_register_models", crm)
        assert not models or crm.registry.migration_folders.get(subject.name), (
            f"plugin {subject.name} declares models but no migrations: return its revisions' "
            "folder from crm_register_migrations and write the first revision with "
            f"`crm db revision --plugin {subject.name} -m 'first tables'`"
        )
        problems = branch_problems(crm, subject.name, subject.dependencies)
        assert not problems, _report(problems, f"the migration branch of {subject.name}")

    def test_migrations_match_models_and_go_down_and_up_cleanly(
        self, conformance_crm: CRM
    ) -> None:
        """From an empty database: upgrade, ``alembic check``, downgrade ``<name>@base``
        (core untouched, exactly the plugin's tables gone), upgrade again."""
        crm = conformance_crm
        subject = self.subject(crm)
        tables = {model.__table__.name for model in subject.own("crm_register_models", crm)}
        migrate.upgrade(crm)
        present = _tables(crm)
        assert tables <= present, (
            f"after `crm db upgrade` the tables {sorted(tables - present)} of {subject.name}'s "
            "models do not exist: add a revision that creates them"
        )
        try:
            migrate.check(crm)
        except Exception as exc:  # alembic's AutogenerateDiffsDetected and friends
            pytest.fail(f"plugin {subject.name}: the migrations do not match the models ({exc}); "
                        f"write a revision: crm db revision --plugin {subject.name} -m '...'")
        if not crm.registry.migration_folders.get(subject.name):
            return
        others = {status.branch: status.current for status in migrate.status(crm)
                  if status.branch != subject.name}
        migrate.downgrade(crm, f"{subject.name}@base")
        removed = present - _tables(crm)
        assert removed >= tables, (
            f"`crm db downgrade {subject.name}@base` leaves the tables "
            f"{sorted(tables - removed)}: drop them in the revisions' downgrade()"
        )
        strangers = sorted(name for name in removed if not name.startswith(f"{subject.short}_"))
        assert not strangers, (
            f"`crm db downgrade {subject.name}@base` drops {strangers}, which are not "
            f"{subject.name}'s: a downgrade() removes only what its upgrade() made"
        )
        after = {status.branch: status.current for status in migrate.status(crm)
                 if status.branch != subject.name}
        assert after == others, (
            f"`crm db downgrade {subject.name}@base` moved other branches: {others} -> {after}"
        )
        migrate.upgrade(crm)
        assert _tables(crm) == present, (
            f"upgrading again after the downgrade does not rebuild {subject.name}'s tables: "
            f"{sorted(present ^ _tables(crm))}"
        )

    # -- names -------------------------------------------------------------------------

    def test_names_are_namespaced(self, crm: CRM) -> None:
        """Tables ``<prefix>_*``, blueprints ``<name>``/``<name>_*``, templates under
        ``templates/<name>/``, the plugin's own hooks ``<name>_*``, permissions
        ``<prefix>.*``."""
        subject = self.subject(crm)
        name, short = subject.name, subject.short
        problems = [
            f"table {model.__table__.name!r} does not start with {short + '_'!r}"
            for model in subject.own("crm_register_models", crm)
            if not model.__table__.name.startswith(f"{short}_")
        ]
        for blueprint in subject.own("crm_register_blueprints", crm):
            if blueprint.name != name and not blueprint.name.startswith(f"{name}_"):
                problems.append(f"blueprint {blueprint.name!r} is not named {name!r} or "
                                f"{name + '_...'!r}")
            problems.extend(_template_problems(blueprint, name))
        problems += [f"hook {hook!r} (crm_addhooks) does not start with {name + '_'!r}"
                     for hook in sorted(added_hookspecs(subject.module))
                     if not hook.startswith(f"{name}_")]
        problems += [
            f"permission {permission.name!r} does not start with {short + '.'!r}"
            for permission in subject.own("crm_register_permissions", crm)
            if not permission.name.startswith(f"{short}.")
        ]
        assert not problems, _report(problems, f"names of {name} that are not its own")

    def test_permissions_checked_are_declared(self, crm: CRM) -> None:
        """Every permission the code checks (``require``, ``has_permission``,
        ``permission=``, ``in ....permissions``; templates too) is registered, and so are
        the ApiResources' ``.view``, exporters', importers' and search providers'."""
        subject = self.subject(crm)
        registered = set(crm.registry.permissions)
        root = subject.root
        templates = ([] if root.is_file() else
                     sorted(p for p in root.rglob("*") if p.suffix in TEMPLATE_SUFFIXES))
        problems = [
            f"{permission!r}, checked at {', '.join(places[:3])}"
            for permission, places in sorted(
                checked_permissions(subject.source_files(), templates).items())
            if permission not in registered
            and not any(name.startswith(f"{permission}.") for name in registered)
        ]
        for resource in subject.own("crm_register_api_resources", crm):
            # ApiResource checks ``<permission>.view`` itself; its service checks the rest.
            if f"{resource.permission}.view" not in registered:
                problems.append(f"{resource.permission + '.view'!r} (API resource "
                                f"{resource.name}: its lists and histories need it)")
        for hook in ("crm_register_exporters", "crm_register_importers",
                     "crm_register_search_providers"):
            problems += [f"{item.permission!r} ({hook}: {getattr(item, 'name', item)})"
                         for item in subject.own(hook, crm)
                         if getattr(item, "permission", None)
                         and item.permission not in registered]
        assert not problems, _report(
            problems, f"permissions {subject.name} checks but nobody declares: return them "
            "from crm_register_permissions (or fix the name)")

    # -- hooks -------------------------------------------------------------------------

    def test_hook_implementations_match_hookspecs(self, crm: CRM) -> None:
        """Each hookimpl matches a spec of core, of the plugin or of a declared plugin;
        those of an optional plugin are marked ``optionalhook=True``."""
        subject = self.subject(crm)
        problems = hook_problems(
            subject.module,
            required={name: plugin_module(name) for name in subject.dependencies},
            optional={name: plugin_module(name) for name in subject.optional},
        )
        assert not problems, _report(problems, f"hook implementations of {subject.name}")

    # -- the API -----------------------------------------------------------------------

    def test_api_routes_are_in_the_openapi_document(self, app: Flask, client: Any) -> None:
        """Each method of each ``/api/v1`` route of the plugin's blueprints and
        ApiResources is an operation of ``/api/v1/openapi.json`` with its path parameters."""
        crm = app.extensions["crm"]
        subject = self.subject(crm)
        rules = plugin_api_rules(
            app,
            [blueprint.name for blueprint in subject.own("crm_register_blueprints", crm)],
            [resource.name for resource in subject.own("crm_register_api_resources", crm)],
        )
        response = client.get("/api/v1/openapi.json")
        assert response.status_code == 200, response.get_data(as_text=True)
        missing = undocumented(rules, response.get_json())
        assert not missing, _report(
            missing, f"routes of {subject.name} missing from the OpenAPI document: describe "
            "them with crm_core.web.api.openapi.add_openapi_contributor")

    def test_api_resources_follow_the_conventions(self, app: Flask, api: Any) -> None:
        """Each ApiResource's list answers JSON ``{data, next}`` to an authorised user, a
        missing record is a problem+json 404 and a write without ``If-Match`` a 428."""
        crm = app.extensions["crm"]
        subject = self.subject(crm)
        problems = []
        for resource in subject.own("crm_register_api_resources", crm):
            listing = api.get(f"/{resource.name}")
            body = listing.get_json(silent=True)
            if (listing.status_code != 200 or listing.mimetype != "application/json"
                    or not isinstance(body, dict) or not isinstance(body.get("data"), list)
                    or "next" not in body):
                problems.append(f"GET /api/v1/{resource.name}: {listing.status_code} "
                                f"{listing.mimetype}, not JSON with `data` and `next`")
            missing = api.get(f"/{resource.name}/{MAX_ID}")
            if missing.status_code != 404 or missing.mimetype != "application/problem+json":
                problems.append(f"GET /api/v1/{resource.name}/{MAX_ID}: {missing.status_code} "
                                f"{missing.mimetype}, not a problem+json 404")
            unguarded = api.patch(f"/{resource.name}/{MAX_ID}", json={})
            if (unguarded.status_code != 428
                    or unguarded.mimetype != "application/problem+json"):
                problems.append(f"PATCH /api/v1/{resource.name}/<id> without If-Match: "
                                f"{unguarded.status_code}, not a problem+json 428")
        assert not problems, _report(problems, f"API resources of {subject.name}")

    # -- imports -----------------------------------------------------------------------

    def test_imports_only_public_modules(self, crm: CRM) -> None:
        """The package imports crm-core's public modules, itself, declared plugins and
        third-party libraries only."""
        subject = self.subject(crm)
        installed = installed_plugins()
        packages = {name: module.split(".")[0] for name, module in installed.items()}
        declared = [packages.get(name, name) for name in (*subject.dependencies,
                                                            *subject.optional)]
        problems = forbidden_imports(
            subject.source_files(),
            own=subject.package,
            allowed_plugins=declared,
            other_plugins=packages.values(),
            migration_folders=crm.registry.migration_folders.get(subject.name, []),
        )
        assert not problems, _report(
            problems, f"imports of {subject.name} beyond crm-core's public API (see "
            "crm_core.conformance.PUBLIC_MODULES) and its declared plugins")


def _tables(crm: CRM) -> set[str]:
    with crm.engine.connect() as connection:
        return set(inspect(connection).get_table_names())


def _template_problems(blueprint: Any, name: str) -> list[str]:
    """Templates of ``blueprint`` outside ``templates/<name>/`` (they could shadow core's)."""
    loader = blueprint.jinja_loader
    if loader is None:
        return []
    problems = []
    for folder in map(Path, loader.searchpath):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(folder)
            if relative.parts[0] != name:
                problems.append(f"template {folder.name}/{relative.as_posix()} of blueprint "
                                f"{blueprint.name!r} is not under {folder.name}/{name}/")
    return problems
