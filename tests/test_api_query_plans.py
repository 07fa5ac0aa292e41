"""The API's main reads use indexes: every SELECT they send is explained, none scans a big table.

The statements are the ones the requests really send (captured on the test's
connection), so a change to a view, a filter or the pagination that loses an index
fails here. SQLite: ``EXPLAIN QUERY PLAN`` may show no ``SCAN`` of a big table and no
sort of one. PostgreSQL picks plans by statistics (the tables here are tiny), so
sequential scans are switched off and the plan may still not hold one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from crm_core.testing import ApiClient

pytestmark = pytest.mark.plugins()

#: The tables whose full scan would make a request slow on a big database.
BIG_TABLES = ("customer", "contact", "contact_email", "contact_phone", "interaction", "audit_entry")


@pytest.fixture
def book(api: ApiClient) -> dict[str, Any]:
    """A few customers, a contact, calls and changes: enough for every request to find rows."""
    ids = {}
    for name in ("Acme Industries", "Globex", "Initech", "Umbrella"):
        response = api.post("/customers", json={"name": name, "email": f"info@{name[:4]}.example",
                                                "tags": ["vip"]})
        ids[name] = response.get_json()["id"]
    acme = ids["Acme Industries"]
    api.post("/contacts", json={"customer_id": acme, "last_name": "Coyote",
                                "emails": [{"email": "wile@acme.example"}]})
    for day in range(1, 4):
        api.post("/interactions", json={"customer_id": acme, "channel": "call",
                                        "occurred_at": f"2026-05-0{day}T10:00:00Z"})
    return {"acme": acme}


@contextmanager
def captured_selects(crm: Any) -> Iterator[list[tuple[str, Any]]]:
    """The SELECTs sent on the test's connection (every request's session uses it)."""
    connection = crm.session_factory.kw["bind"]
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", record)


def scans(crm: Any, statement: str, parameters: Any) -> list[str]:
    """The lines of ``statement``'s plan that read a big table whole (or sort one)."""
    connection = crm.session_factory.kw["bind"]
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        lines = [row[3] for row in rows]
        big = "|".join(BIG_TABLES)
        return [line for line in lines if re.match(rf"SCAN ({big})\b(?! VIRTUAL)", line)]
    plan = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar()
    found: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in BIG_TABLES:
            found.append(json.dumps(node))
        for child in node.get("Plans", ()):
            walk(child)

    walk(plan[0]["Plan"])
    return found


def test_the_main_requests_read_through_indexes(api, crm, book):
    acme = book["acme"]
    connection = crm.session_factory.kw["bind"]
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET enable_seqscan = off")  # undone by the test's rollback
    first = api.get("/customers", query_string={"limit": 2}).get_json()
    owner = api.get("/users/me").get_json()["id"]
    requests = {
        "first page": "/customers?limit=2",
        "contacts first page": "/contacts?limit=2",
        "interactions first page": "/interactions?limit=2",
        "deep page": first["next"],
        "descending": "/customers?sort=-name&limit=2",
        "email": "/customers?email=info@acme.example",
        "tag": "/customers?tag=vip",
        "owner": f"/customers?owner_id={owner}",
        "q prefix": "/customers?q=acm",
        "q email": "/customers?q=info@acme.example",
        "contacts q": "/contacts?q=coyote",
        "contacts email": "/contacts?email=wile@acme.example",
        "contacts of a customer": f"/contacts?customer_id={acme}",
        "interactions of a customer": f"/interactions?customer_id={acme}",
        "one customer": f"/customers/{acme}",
        "timeline": f"/customers/{acme}/timeline?limit=2",
        "search prefix": "/search?q=Acme",
        "search email": "/search?q=info@acme.example",
        "history": f"/customers/{acme}/history",
    }
    problems = []
    for label, url in requests.items():
        with captured_selects(crm) as statements:
            response = api.get(url)
            assert response.status_code == 200, (label, response.get_json())
        assert statements, label
        for statement, parameters in statements:
            for line in scans(crm, statement, parameters):
                problems.append(f"{label}: {line}\n  {statement}")
    assert not problems, "\n".join(problems)


def test_every_filter_and_sort_of_every_list_reads_through_an_index(api, app, crm, book):
    """Each list parameter a resource declares, alone, with a value of its column's type."""
    from crm_core.web.api.pagination import python_type_of

    connection = crm.session_factory.kw["bind"]
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET enable_seqscan = off")
    problems = []
    for name, resource in app.extensions["crm_api_resources"].items():
        queries = [{"sort": key} for key in resource.sorts]
        queries += [{"sort": f"-{key}"} for key in resource.sorts]
        for parameter, target in resource.filters.items():
            column_type = None if callable(target) and not hasattr(target, "key") else target
            value = "1" if column_type is not None and python_type_of(column_type) is int else "x"
            queries.append({parameter: value})
        for query in queries:
            with captured_selects(crm) as statements:
                response = api.get(f"/{name}", query_string=query)
                assert response.status_code == 200, (name, query, response.get_json())
            for statement, parameters in statements:
                for line in scans(crm, statement, parameters):
                    problems.append(f"{name} {query}: {line}\n  {statement}")
    assert not problems, "\n".join(problems)
