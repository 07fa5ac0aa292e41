"""crm-sales as core expects a plugin to be: its migration branch builds exactly its models,
goes down and up again cleanly, its names are namespaced, its permissions declared."""

from __future__ import annotations

from pathlib import Path

import pytest
from crm_sales import hookspecs, plugin, web
from crm_sales.models import MODELS
from crm_sales.permissions import PERMISSIONS
from sqlalchemy import inspect

from crm_core import CRM, migrate
from crm_core.testing import crm_test_settings

SALES_TABLES = {model.__tablename__ for model in MODELS}


@pytest.fixture
def sales_crm(fresh_database_url: str, tmp_path: Path) -> CRM:
    """A CRM on an empty database with crm-sales (and no other plugin) enabled."""
    crm = CRM(crm_test_settings(fresh_database_url, tmp_path / "instance",
                                plugins=["crm_sales"]))
    yield crm
    crm.dispose()


def _tables(crm: CRM) -> set[str]:
    with crm.engine.connect() as connection:
        return set(inspect(connection).get_table_names())


def test_the_branch_builds_the_models_and_goes_down_and_up_cleanly(sales_crm):
    migrate.upgrade(sales_crm)
    assert _tables(sales_crm) >= SALES_TABLES
    migrate.check(sales_crm)  # alembic check: the migration matches the models
    status = {branch.branch: branch for branch in migrate.status(sales_crm)}
    assert status["crm_sales"].up_to_date and status["crm_core"].up_to_date
    migrate.downgrade(sales_crm, "crm_sales@base")
    assert not SALES_TABLES & _tables(sales_crm)
    assert {branch.branch: branch.current for branch in migrate.status(sales_crm)}[
        "crm_core"] is not None  # core untouched
    migrate.upgrade(sales_crm)
    assert _tables(sales_crm) >= SALES_TABLES


def test_names_are_namespaced_and_permissions_declared(sales_crm):
    assert all(name.startswith("sales_") for name in SALES_TABLES)
    assert all(name.startswith("crm_sales_") for name in hookspecs.HOOKS)
    blueprints = plugin.crm_register_blueprints()
    assert {bp.name for bp in blueprints} == {"crm_sales", "crm_sales_api"}
    declared = {permission.name for permission in PERMISSIONS}
    assert declared <= set(sales_crm.registry.permissions)
    assert all(name.startswith("sales.") for name in declared)
    # every permission the plugin's code checks is one it declares
    source = "\n".join(p.read_text() for p in Path(plugin.__file__).parent.rglob("*.py"))
    import re

    checked = set(re.findall(r'"(sales\.[a-z]+\.[a-z]+|sales\.admin)"', source))
    assert checked <= declared, checked - declared


def test_the_plugin_imports_only_core_and_itself():
    root = Path(plugin.__file__).parent
    import re

    imported = set()
    for path in root.rglob("*.py"):
        imported |= set(re.findall(r"^\s*(?:from|import) (crm_[a-z_]+)", path.read_text(), re.M))
    assert imported <= {"crm_core", "crm_sales"}, imported


def test_every_api_route_of_the_plugin_is_in_the_openapi_document(app, client):
    """Each method of each ``/api/v1`` route crm-sales adds (its blueprint's and its
    resources') is an operation of the OpenAPI document, with its path parameters."""
    import re

    document = client.get("/api/v1/openapi.json").get_json()
    resources = tuple(f"{resource.name}_" for resource in web.collect("api_resources"))
    ours = [rule for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith(f"{web.api.name}.")
            or (rule.endpoint.startswith("crm_api.")
                and rule.endpoint.removeprefix("crm_api.").startswith(resources))]
    assert len(ours) >= 30 and resources
    missing = []
    for rule in ours:
        assert rule.rule.startswith("/api/v1/"), rule.rule
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        item = document["paths"].get(path, {})
        documented = {parameter["name"] for parameter in item.get("parameters", [])}
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation = item.get(method.lower())
            if operation is None:
                missing.append(f"{method} {rule.rule}")
                continue
            names = documented | {p.get("name") for p in operation.get("parameters", [])
                                  if isinstance(p, dict)}
            if not set(rule.arguments) <= names:
                missing.append(f"{method} {rule.rule}: path parameters")
    assert not missing, missing
