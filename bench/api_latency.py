"""Benchmark: read latency of the REST API on a large SQLite database, through the test client.

With 1,000,000 customers and 10,000,000 interactions (``bench/large_dataset.py``):
the first page and a deep keyset page of the customer list, the email filter, a
customer's timeline and the global search by name prefix, each at p95 <= 20 ms (the
issue's target), plus the query plans of the list queries. Run
``python bench/api_latency.py --help``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from flask import Flask
from flask.testing import FlaskClient
from large_dataset import DEFAULT_PATH, build
from sqlalchemy import event, select, text

from crm_core import CRM, create_app, migrate
from crm_core.config import load_settings
from crm_core.models import User
from crm_core.services import tokens, users
from crm_core.web.api import PREFIX
from crm_core.web.api.pagination import Cursor

TARGET_P95_MS = 20.0
SECRET_KEY = "crm-bench-latency-secret-key"
ADMIN_EMAIL = "bench-admin@example.com"
#: Routes the lead is adding while this benchmark is written: missing ones are reported.
TIMELINE_RULE = f"{PREFIX}/customers/<record_id>/timeline"
SEARCH_RULE = f"{PREFIX}/search"
#: Tables of authentication: their statements run on every request and are not the
#: scenario's own, so their plans are not printed.
AUTH_TABLE = re.compile(r'\b(?:FROM|JOIN)\s+(?:api_token|"user"|user_role|role|team)\b')


@dataclass
class Scenario:
    """One request, measured again and again."""

    label: str
    url: str
    rule: str | None = None
    """The URL rule that must exist (endpoints still being written); ``None``: always there."""
    check: Callable[[Any], str] | None = None
    """Looks at the JSON body of the first answer; returns what to print about it."""


@dataclass
class Measured:
    """A scenario's timings, in milliseconds, and its statements."""

    scenario: Scenario
    times: list[float] = field(default_factory=list)
    note: str = ""
    statements: list[tuple[str, Any]] = field(default_factory=list)
    unavailable: str = ""

    def percentile(self, percent: float) -> float:
        """Nearest-rank percentile."""
        ordered = sorted(self.times)
        return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def main(argv: Sequence[str] | None = None) -> None:
    """Parse options, make sure the file is there and migrated, then measure and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH, help="the SQLite file")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per scenario")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests first")
    parser.add_argument(
        "--search", default=None,
        help="the name prefix to search for (default: the first 4 letters of a customer's name)",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    path = build(args.path, args.customers, args.interactions)
    print(f"crm-core API latency: {path} ({args.customers:,} customers, "
          f"{args.interactions:,} interactions; ready in {time.perf_counter() - started:.1f} s), "
          f"Flask test client, {args.requests} requests per scenario after {args.warmup} "
          "warm-up requests")
    print(machine_load())
    config = {"database_url": f"sqlite:///{path}", "instance_path": str(path.parent),
              "secret_key": SECRET_KEY, "plugins": []}
    crm = CRM(load_settings(config, environ={}), discover_plugins=False)
    try:
        upgrade(crm)
        with admin_token(crm) as token:
            app = create_app(crm=crm)
            scenarios = build_scenarios(crm, args.customers, args.search)
            results = [
                measure(app, crm, token, scenario, args.requests, args.warmup)
                for scenario in scenarios
            ]
        report(results)
        show_plans(crm, results)
    finally:
        crm.dispose()


def machine_load() -> str:
    """The 1-minute load average and the CPUs, with a warning when other work competes."""
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    busy = "  (other processes are running: the figures come out pessimistic)" if load > 0.5 else ""
    return f"load average {load:.2f} on {cpus} CPUs before the run{busy}"


# -- set-up --------------------------------------------------------------------------------


def upgrade(crm: CRM) -> None:
    """Take the file to every head (new core migrations apply to it); time it on its own."""
    before = {status.branch: status.current for status in migrate.status(crm)}
    started = time.perf_counter()
    migrate.upgrade(crm)
    seconds = time.perf_counter() - started
    for status in migrate.status(crm):
        was = before.get(status.branch)
        change = "up to date" if was == status.current else f"{was} -> {status.current}"
        print(f"migrations ({status.branch}): {change} at {status.head}, {seconds:.1f} s")


@contextmanager
def admin_token(crm: CRM) -> Iterator[str]:
    """A token of the benchmark's admin (made once in the file); revoked afterwards."""
    with crm.unit_of_work(source="bench") as uow:
        users.ensure_default_roles(uow)
        admin = uow.session.scalar(select(User).where(User.email == ADMIN_EMAIL))
        made = admin is None
        if admin is None:
            admin = users.create(uow, {"email": ADMIN_EMAIL, "name": "Bench Admin",
                                       "password": "bench-password", "roles": ["admin"]})
        token, plain = tokens.create(uow, admin, name="api_latency")
        token_id = token.id
    print(f"admin {ADMIN_EMAIL}: {'created' if made else 'reused'}; token {token.prefix}")
    try:
        yield plain
    finally:
        with crm.unit_of_work(source="bench") as uow:
            tokens.revoke(uow, token_id)


def build_scenarios(crm: CRM, customers: int, search: str | None) -> list[Scenario]:
    """The requests, with the cursor, email, customer and prefix read from the file."""
    base = f"{PREFIX}/customers"
    with crm.engine.connect() as connection:
        # The row ~90% into the list's order (name, id), with one query.
        name, ident = connection.execute(text(
            "SELECT name, id FROM customer WHERE archived = 0 ORDER BY name, id LIMIT 1 "
            "OFFSET (SELECT count(*) * 9 / 10 FROM customer WHERE archived = 0)"
        )).one()
        middle = customers // 2 + 1
        email, middle_name = connection.execute(
            text("SELECT email, name FROM customer WHERE id = :id"), {"id": middle}
        ).one()
        interactions = connection.scalar(
            text("SELECT count(*) FROM interaction WHERE customer_id = :id"), {"id": middle}
        )
    prefix = search or middle_name.split()[0][:4]
    # A word of one name only (the generator numbers names): q= must not walk the list.
    rare = next((word for word in name.split() if word.isdigit()), name)
    cursor = Cursor("name", False, name, ident).encode()
    return [
        Scenario("customers, first page (name, limit 50)", f"{base}?limit=50",
                 check=_rows),
        Scenario(f"customers, deep page (after {name!r})",
                 f"{base}?{urlencode({'limit': 50, 'cursor': cursor})}",
                 check=lambda body: _after(body, name)),
        Scenario(f"customers?email={email}", f"{base}?{urlencode({'email': email})}",
                 check=_rows),
        Scenario(f"timeline of customer {middle} ({interactions} interactions)",
                 f"{base}/{middle}/timeline", rule=TIMELINE_RULE, check=_rows),
        Scenario(f"search?q={prefix}", f"{PREFIX}/search?q={quote(prefix)}", rule=SEARCH_RULE,
                 check=_rows),
        Scenario(f"search?q={email}", f"{PREFIX}/search?q={quote(email)}", rule=SEARCH_RULE,
                 check=_rows),
        Scenario(f"customers?q={prefix} (name order, many match)",
                 f"{base}?{urlencode({'q': prefix})}", check=_rows),
        Scenario(f"customers?q={rare} (name order, one matches)",
                 f"{base}?{urlencode({'q': rare})}", check=_rows),
    ]


def _rows(body: Any) -> str:
    data = body.get("data", body) if isinstance(body, dict) else body
    more = " (more)" if isinstance(body, dict) and body.get("next") else ""
    return f"{len(data)} rows{more}" if isinstance(data, list) else type(data).__name__


def _after(body: Any, name: str) -> str:
    rows = body["data"]
    if not rows or rows[0]["name"] < name:
        raise SystemExit(f"the deep page does not start after {name!r}: {rows[:1]}")
    return _rows(body)


# -- measuring -----------------------------------------------------------------------------


def measure(
    app: Flask, crm: CRM, token: str, scenario: Scenario, requests: int, warmup: int
) -> Measured:
    """Warm up, then time ``requests`` GETs of the scenario's URL through the test client."""
    result = Measured(scenario)
    if scenario.rule is not None and not _has_rule(app, scenario.rule):
        result.unavailable = f"not available (no route {scenario.rule})"
        return result
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    with _statements(crm) as statements:
        response = client.get(scenario.url, headers=headers)
    if response.status_code in (404, 405) and scenario.rule is not None:
        result.unavailable = f"not available (answered {response.status_code})"
        return result
    if response.status_code != 200:
        raise SystemExit(f"{scenario.label}: {response.status_code} {response.get_data(True)}")
    result.statements = statements
    result.note = scenario.check(response.get_json()) if scenario.check else ""
    for _ in range(warmup):
        _get(client, scenario.url, headers)
    for _ in range(requests):
        began = time.perf_counter()
        _get(client, scenario.url, headers)
        result.times.append((time.perf_counter() - began) * 1e3)
    return result


def _get(client: FlaskClient, url: str, headers: dict[str, str]) -> None:
    response = client.get(url, headers=headers)
    if response.status_code != 200:
        raise SystemExit(f"GET {url}: {response.status_code} {response.get_data(True)[:300]}")


def _has_rule(app: Flask, rule: str) -> bool:
    return any(item.rule == rule for item in app.url_map.iter_rules())


@contextmanager
def _statements(crm: CRM) -> Iterator[list[tuple[str, Any]]]:
    """Collect the SELECT statements (and parameters) the engine runs meanwhile."""
    seen: list[tuple[str, Any]] = []

    def collect(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append((statement, parameters))

    event.listen(crm.engine, "before_cursor_execute", collect)
    try:
        yield seen
    finally:
        event.remove(crm.engine, "before_cursor_execute", collect)


# -- output --------------------------------------------------------------------------------


def report(results: list[Measured]) -> None:
    """One line per scenario: p50, p95 and max in ms, and PASS/FAIL against the target."""
    width = max(len(result.scenario.label) for result in results)
    print(f"\n  {'':<{width}}      p50      p95      max")
    for result in results:
        label = result.scenario.label
        if result.unavailable:
            print(f"  {label:<{width}}  {result.unavailable}")
            continue
        p95 = result.percentile(95)
        verdict = "PASS" if p95 <= TARGET_P95_MS else "FAIL"
        print(f"  {label:<{width}}  {result.percentile(50):6.2f}  {p95:7.2f}  "
              f"{max(result.times):7.2f} ms  {verdict} (p95 <= {TARGET_P95_MS:g} ms)  "
              f"{result.note}")


def show_plans(crm: CRM, results: list[Measured]) -> None:
    """SQLite's EXPLAIN QUERY PLAN of each scenario's own statements (not authentication's)."""
    print("\nQuery plans (EXPLAIN QUERY PLAN of the statements each request ran, "
          "authentication's left out):")
    with crm.engine.connect() as connection:
        for result in results:
            if result.unavailable:
                continue
            print(f"  {result.scenario.label}")
            for statement, parameters in result.statements:
                if AUTH_TABLE.search(statement):
                    continue
                print(f"    {' '.join(statement.split())[:160]}")
                plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}",
                                                  parameters).all()
                for row in plan:
                    detail = row[-1]
                    warning = ""
                    words = detail.split()
                    if (words[:1] == ["SCAN"] and "USING" not in words
                            and "VIRTUAL" not in words):
                        warning = "   <-- FULL SCAN"
                    print(f"      {detail}{warning}")


if __name__ == "__main__":
    main()
