"""Benchmark: the forecast and the funnel of crm-sales on 100,000 deals and 1,000,000 stage stays.

Builds the deals (two years of them, 20 owners in 4 teams, three currencies, a product
line or two each) and their stage history with Core ``INSERT`` executemany, sums the
funnel's days and months (:func:`crm_sales.services.funnel_store.rebuild`, timed), then
times :func:`crm_sales.services.reports.forecast` and
:func:`crm_sales.services.funnel.funnel` in several shapes (``--runs`` timed calls each
after ``--warmup``) and prints p50, p95 and max against the target p95 <= 100 ms, on
SQLite and, with ``--database-url``, on a scratch database of that PostgreSQL server.
Last, it moves ``--moves`` deals through the service with the funnel's sums kept and
with them stubbed out: what keeping them costs a write. ``--plans`` prints the query
plans of every scenario (of the failing ones without it). Run
``python bench/reports.py --help`` from ``plugins/crm-sales``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

from crm_sales.models import (
    Opportunity,
    OpportunityLine,
    Pipeline,
    Product,
    Quota,
    Stage,
    StageStay,
)
from crm_sales.services import funnel, funnel_store, opportunities, reports
from sqlalchemy import create_engine, event, func, insert, select, text
from sqlalchemy.engine import Connection, make_url

from crm_core import CRM, migrate
from crm_core.config import load_settings
from crm_core.models import Customer, Role, Team, User

TARGET_P95_MS = 100.0
SECRET_KEY = "crm-bench-reports-secret-key"
OWNERS, TEAMS, CUSTOMERS, PRODUCTS = 20, 4, 2_000, 50
#: The deals are created over these two years; open ones expected to close until mid-2027.
FIRST_DAY, LAST_DAY = dt.date(2025, 1, 1), dt.date(2026, 12, 31)
INDUSTRIES = ("Manufacturing", "Retail", "Software", "Health", "Energy", "Logistics",
              "Finance", "Education", "Media", "Public sector")
COUNTRIES = ("DE", "SE", "PL", "FR", "NL", "AT", "CH", "DK", "GB")
BATCH = 20_000


@dataclass
class Scenario:
    """One report call, measured again and again."""

    label: str
    call: Callable[[Any], Any]
    as_team_member: bool = False


@dataclass
class Measured:
    """A scenario's timings in milliseconds and the statements of one call."""

    scenario: Scenario
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    statements: list[tuple[str, Any]] = field(default_factory=list)

    def percentile(self, percent: float, *, cpu: bool = False) -> float:
        """Nearest-rank percentile of the times (of the process's CPU times with ``cpu``)."""
        ordered = sorted(self.cpu if cpu else self.times)
        return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def scenarios() -> list[Scenario]:
    """The report calls timed: the usual forecast and funnel shapes."""
    day = dt.date.fromisoformat

    def forecast(**kwargs: Any) -> Callable[[Any], Any]:
        return lambda uow: reports.forecast(uow, **kwargs)

    def funnel_of(**kwargs: Any) -> Callable[[Any], Any]:
        return lambda uow: funnel.funnel(uow, **kwargs)

    quarter = {"start": day("2026-04-01"), "end": day("2026-06-30")}
    return [
        Scenario("forecast: 3 months, by owner", forecast(kind="month", by="owner", **quarter)),
        Scenario("forecast: 4 quarters, by team", forecast(
            kind="quarter", by="team", start=day("2026-01-01"), end=day("2026-12-31"))),
        Scenario("forecast: 3 months, total, team member", forecast(
            kind="month", by="total", **quarter), as_team_member=True),
        Scenario("forecast: 12 months, by owner", forecast(
            kind="month", by="owner", start=day("2026-01-01"), end=day("2026-12-31"))),
        Scenario("funnel: 3-month cohort", funnel_of(**quarter)),
        Scenario("funnel: 3-month cohort, by product", funnel_of(by="product", **quarter)),
        Scenario("funnel: 12-month cohort", funnel_of(
            start=day("2025-07-01"), end=day("2026-06-30"))),
        Scenario("funnel: 12-month cohort, by owner", funnel_of(
            by="owner", start=day("2025-07-01"), end=day("2026-06-30"))),
        Scenario("funnel: 3-month cohort, by segment", funnel_of(by="segment", **quarter)),
        Scenario("funnel: 3-month cohort, by region", funnel_of(by="region", **quarter)),
        Scenario("funnel: 12-month cohort, by product", funnel_of(
            by="product", start=day("2025-07-01"), end=day("2026-06-30"))),
        Scenario("funnel: 12-month cohort, by segment", funnel_of(
            by="segment", start=day("2025-07-01"), end=day("2026-06-30"))),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Parse options, build the data on SQLite (and PostgreSQL), measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--stays", type=int, default=10, help="stage stays per deal")
    parser.add_argument("--runs", type=int, default=20, help="timed calls per scenario")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--moves", type=int, default=200,
                        help="deals moved through the service at the end (0: none)")
    parser.add_argument("--plans", action="store_true", help="print every scenario's plans")
    parser.add_argument(
        "--database-url", default=None,
        help="also run on this PostgreSQL server, e.g. postgresql+psycopg://postgres@127.0.0.1/"
        "test; a scratch database is created there and dropped afterwards",
    )
    args = parser.parse_args(argv)
    if args.database_url and make_url(args.database_url).get_backend_name() != "postgresql":
        parser.error("--database-url must be a postgresql+psycopg:// URL (SQLite always runs)")
    print(f"crm-sales reports benchmark: {args.deals:,} deals, {args.deals * args.stays:,} "
          f"stage stays; {args.runs} runs per scenario after {args.warmup}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="crm-bench-reports-") as folder:
        targets: list[tuple[str, Any]] = [("SQLite", sqlite_database(Path(folder)))]
        if args.database_url:
            targets.append(("PostgreSQL", postgres_database(args.database_url)))
        for name, database in targets:
            with database as url:
                print(f"\n{name}")
                crm = make_crm(url, Path(folder))
                try:
                    started = time.perf_counter()
                    cpu = time.process_time()
                    counts = build(crm, args.deals, args.stays, random.Random(args.seed))
                    print(f"  built {counts} in {time.perf_counter() - started:.1f} s "
                          f"({time.process_time() - cpu:.1f} s of this process's CPU)")
                    results = measure(crm, args.runs, args.warmup)
                    report(results)
                    measure_moves(crm, args.moves, random.Random(args.seed))
                    measure_moves(crm, args.moves, random.Random(args.seed + 1), keep_sums=False)
                    failing = [r for r in results if r.percentile(95) > TARGET_P95_MS]
                    if args.plans or failing:
                        show_plans(crm, results if args.plans else failing)
                finally:
                    crm.dispose()


# -- the data ----------------------------------------------------------------------------------


def make_crm(url: str, folder: Path) -> CRM:
    """A CRM with crm-sales (only) on ``url``, migrated to every head."""
    settings = load_settings(
        {"database_url": url, "instance_path": str(folder), "secret_key": SECRET_KEY,
         "plugins": ["crm_sales"]},
        environ={},
    )
    crm = CRM(settings)
    migrate.upgrade(crm)
    return crm


def build(crm: CRM, deals: int, stays: int, rng: random.Random) -> str:
    """Users, teams, customers, products, deals with lines and stays, quotas; a summary."""
    with crm.unit_of_work(source="bench") as uow:
        session = uow.session
        teams = [Team(name=f"Team {n}") for n in range(1, TEAMS + 1)]
        session.add_all(teams)
        session.flush()
        seller = Role(name="bench-seller", permissions=["sales.report.view"], visibility="team")
        boss = Role(name="bench-boss", permissions=["sales.report.view", "sales.deal.view",
                                                   "sales.deal.edit"], visibility="all")
        owners = [User(email=f"owner{n}@example.com", name=f"Owner {n}", roles=[seller],
                       team_id=teams[n % TEAMS].id) for n in range(OWNERS)]
        session.add_all([*owners, User(email="boss@example.com", name="Boss", roles=[boss])])
        session.flush()
        owner_ids = [user.id for user in owners]
        pipeline = session.scalars(select(Pipeline).where(Pipeline.is_default.is_(True))).one()
        stages = list(pipeline.stages)
    open_stages = [s for s in stages if s.outcome == "open"]
    final_stage = {"won": next(s for s in stages if s.outcome == "won"),
                   "lost": next(s for s in stages if s.outcome == "lost")}
    with crm.engine.begin() as connection:
        connection.execute(insert(Customer.__table__), [
            {"id": n, "name": f"Customer {n}", "industry": rng.choice(INDUSTRIES),
             "country": rng.choice(COUNTRIES)} for n in range(1, CUSTOMERS + 1)])
        connection.execute(insert(Product.__table__), [
            {"id": n, "code": f"P{n:03}", "name": f"Product {n}", "unit_price": Decimal(100)}
            for n in range(1, PRODUCTS + 1)])
        connection.execute(insert(Quota.__table__), [
            {"owner_id": owner, "period": "month", "starts_on": reports.add_months(FIRST_DAY, m),
             "amount": Decimal(rng.randrange(50, 300) * 1000), "currency": "EUR"}
            for owner in owner_ids for m in range(30)])
    counts = {"stays": 0, "lines": 0}
    span = (LAST_DAY - FIRST_DAY).days * 86400
    start = dt.datetime.combine(FIRST_DAY, dt.time())  # naive UTC: the loader's session is UTC
    with BulkLoader(crm) as loader:
        moment, money = loader.moment, loader.money
        deal_rows: list[tuple[Any, ...]] = []
        stay_rows: list[tuple[Any, ...]] = []
        line_rows: list[tuple[Any, ...]] = []
        for ident in range(1, deals + 1):
            created = start + dt.timedelta(seconds=int(rng.random() * span))
            outcome = rng.choices(("open", "won", "lost"), (40, 30, 30))[0]
            path = _path(rng, stays, open_stages, final_stage.get(outcome))
            entered = created
            for number, stage in enumerate(path):
                if number == len(path) - 1:
                    stay_rows.append((ident, stage.id, moment(entered), None))
                else:
                    left = entered + dt.timedelta(minutes=720 + int(rng.random() * 20_880))
                    stay_rows.append((ident, stage.id, moment(entered), moment(left)))
                    entered = left
            final = path[-1]
            deal_rows.append((
                ident, f"Deal {ident}", 1 + int(rng.random() * CUSTOMERS), pipeline.id, final.id,
                final.outcome, rng.choice(owner_ids) if rng.random() > 0.01 else None,
                money(Decimal(100_000 + int(rng.random() * 9_900_000)) / 100),
                rng.choices(("EUR", "USD", "SEK"), (85, 10, 5))[0],
                (created + dt.timedelta(days=30 + int(rng.random() * 370))).date().isoformat(),
                rng.choice((None, None, None, None, 15, 40, 60, 90)),
                outcome == "open" and rng.random() < 0.3, moment(entered),
                moment(entered) if outcome != "open" else None, moment(created),
                moment(entered), 1, False, "", "",
            ))
            for position in range(rng.choices((0, 1, 2), (10, 70, 20))[0]):
                line_rows.append((ident, position, 1 + int(rng.random() * PRODUCTS), "",
                                  money(Decimal(1)), money(Decimal(100)), money(Decimal(0))))
            if len(stay_rows) >= BATCH * 5 or ident == deals:
                loader.load(Opportunity, DEAL_COLUMNS, deal_rows)
                loader.load(OpportunityLine, LINE_COLUMNS, line_rows)
                loader.load(StageStay, STAY_COLUMNS, stay_rows)
                counts["stays"] += len(stay_rows)
                counts["lines"] += len(line_rows)
                deal_rows, stay_rows, line_rows = [], [], []
    with crm.engine.begin() as connection:
        stored = connection.scalar(select(func.count()).select_from(StageStay))
    assert stored == counts["stays"], (stored, counts)
    started = time.perf_counter()
    with crm.engine.begin() as connection:  # loaded behind the services: sum the days
        stage_rows, outcome_rows = funnel_store.rebuild(connection)
    print(f"  funnel sums rebuilt ({stage_rows:,} stage rows, {outcome_rows:,} outcome rows) "
          f"in {time.perf_counter() - started:.1f} s")
    with crm.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    with crm.unit_of_work(write=False) as uow:  # every deal is in the cohort of both years
        whole = funnel.funnel(uow, start=FIRST_DAY, end=LAST_DAY)
        assert whole == funnel.funnel(uow, start=FIRST_DAY, end=LAST_DAY, stored=False)
    assert whole.overall.deals == deals and whole.steps[0].entered == deals, whole.overall
    return f"{deals:,} deals, {counts['stays']:,} stays, {counts['lines']:,} lines"


DEAL_COLUMNS = (
    "id", "name", "customer_id", "pipeline_id", "stage_id", "status", "owner_id", "amount",
    "currency", "expected_close", "probability", "committed", "stage_entered_at", "closed_at",
    "created_at", "updated_at", "version", "archived", "source", "next_step",
)
LINE_COLUMNS = ("opportunity_id", "position", "product_id", "description", "quantity",
                "unit_price", "discount_percent")
STAY_COLUMNS = ("opportunity_id", "stage_id", "entered_at", "left_at")
#: The tables loaded in bulk: their indexes are dropped first and built again afterwards.
BULK_MODELS = (Opportunity, OpportunityLine, StageStay)


class BulkLoader:
    """Rows in bulk, as fast as each database takes them: SQLite ``executemany`` of plain
    tuples (values as SQLAlchemy stores them there), PostgreSQL ``COPY``; the tables'
    indexes are dropped before and built again after (the same definitions, from the
    models), then the statistics are refreshed (``ANALYZE``)."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm
        self.sqlite = crm.engine.dialect.name == "sqlite"
        self.connection: Connection | None = None

    def __enter__(self) -> BulkLoader:
        self.connection = self.crm.engine.connect()
        if self.sqlite:
            self.connection.exec_driver_sql("PRAGMA cache_size = -262144")
        else:
            self.connection.exec_driver_sql("SET TIME ZONE 'UTC'")
        for model in BULK_MODELS:
            for index in model.__table__.indexes:
                index.drop(self.connection)
        self.connection.commit()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self.connection is not None
        try:
            for model in BULK_MODELS:
                for index in model.__table__.indexes:
                    index.create(self.connection)
            if not self.sqlite:
                for table in ("sales_opportunity", "sales_opportunity_line", "sales_stage_stay"):
                    self.connection.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))")
            self.connection.exec_driver_sql("ANALYZE")
            self.connection.commit()
        finally:
            self.connection.close()

    def moment(self, value: dt.datetime) -> Any:
        """A naive UTC moment as the database stores it (PostgreSQL: the loader's session
        is in UTC)."""
        if self.sqlite:
            return value.isoformat(" ", "microseconds")
        return value

    def money(self, value: Decimal) -> Any:
        """An amount as the database stores it (SQLite: a float, as SQLAlchemy binds it)."""
        return float(value) if self.sqlite else value

    def load(self, model: Any, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (tuples of ``columns``) into ``model``'s table and commit."""
        assert self.connection is not None
        if not rows:
            return
        table = model.__tablename__
        names = ", ".join(columns)
        if self.sqlite:
            marks = ", ".join("?" * len(columns))
            self.connection.exec_driver_sql(
                f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
        else:
            cursor = self.connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        self.connection.commit()


def _path(rng: random.Random, length: int, open_stages: Sequence[Stage],
          final: Stage | None) -> list[Stage]:
    """The stages a deal went through: from the first, mostly forward, sometimes back,
    ending in ``final`` (won or lost) or, open, wherever it got to."""
    path = [open_stages[0]]
    position, top = 0, len(open_stages) - 1
    for _ in range(length - 1 - (1 if final is not None else 0)):
        if position == 0:
            position = 1
        elif position == top or rng.random() < 0.25:
            position -= 1
        else:
            position += 1
        path.append(open_stages[position])
    if final is not None:
        path.append(final)
    return path


# -- measuring -------------------------------------------------------------------------------


def measure(crm: CRM, runs: int, warmup: int) -> list[Measured]:
    """Each scenario ``warmup`` times untimed, then ``runs`` times timed (a read-only unit
    of work each, as a page or an API request opens one)."""
    with crm.session_factory() as session:
        boss = session.scalars(select(User).where(User.email == "boss@example.com")).one()
        member = session.scalars(select(User).where(User.email == "owner1@example.com")).one()
        boss.roles, member.roles  # noqa: B018 - loaded before the session closes
        session.expunge_all()
    results = []
    for scenario in scenarios():
        user = member if scenario.as_team_member else boss
        measured = Measured(scenario)
        for number in range(warmup + runs):
            with _recording(crm, measured.statements if number == 0 else None):
                began, cpu = time.perf_counter(), time.process_time()
                with crm.unit_of_work(actor=user, source="bench", write=False) as uow:
                    scenario.call(uow)
                elapsed = (time.perf_counter() - began) * 1000
                used = (time.process_time() - cpu) * 1000
            if number >= warmup:
                measured.times.append(elapsed)
                measured.cpu.append(used)
        results.append(measured)
    return results


def measure_moves(crm: CRM, moves: int, rng: random.Random, *, keep_sums: bool = True) -> None:
    """Move ``moves`` open deals one stage on through the service, one committed unit of
    work each (the stage history, the audit, the funnel's sums), and print the times;
    ``keep_sums=False`` stubs the funnel's sums out, to show what keeping them costs."""
    if keep_sums:
        times = _time_moves(crm, moves, rng)
    else:
        idle = funnel_store.Change(None, (), ({}, {}))  # type: ignore[arg-type]
        with (mock.patch.object(funnel_store, "changing", lambda *_args: idle),
              mock.patch.object(funnel_store.Change, "apply", lambda _self: None)):
            times = _time_moves(crm, moves, rng)
    if times:
        times.sort()
        print(f"  {len(times)} moves through the service, funnel sums "
              f"{'kept' if keep_sums else 'stubbed out'}: p50 {times[len(times) // 2]:.2f} ms, "
              f"p95 {times[int(len(times) * 0.95)]:.2f} ms")


def _time_moves(crm: CRM, moves: int, rng: random.Random) -> list[float]:
    """Milliseconds of each of ``moves`` random open deals' move to its next stage."""
    with crm.session_factory() as session:
        boss = session.scalars(select(User).where(User.email == "boss@example.com")).one()
        boss.roles  # noqa: B018 - loaded before the session closes
        session.expunge_all()
        stages = {stage.id: stage for stage in session.scalars(select(Stage))}
        candidates = session.execute(
            select(Opportunity.id, Opportunity.stage_id)
            .where(Opportunity.status == "open", Opportunity.archived.is_(False))
        ).all()
    times = []
    for ident, stage_id in rng.sample(candidates, min(moves, len(candidates))):
        current = stages[stage_id]
        following = [s for s in stages.values()
                     if s.pipeline_id == current.pipeline_id and s.position > current.position]
        if not following:
            continue
        target = min(following, key=lambda s: s.position)
        began = time.perf_counter()
        with crm.unit_of_work(actor=boss, source="bench") as uow:
            opportunities.move(uow, ident, {"stage_id": target.id})
        times.append((time.perf_counter() - began) * 1000)
    return times


@contextmanager
def _recording(crm: CRM, into: list[tuple[str, Any]] | None) -> Iterator[None]:
    """Keep the statements (and parameters) run inside the block in ``into``."""
    if into is None:
        yield
        return

    def record(_c: Any, _cursor: Any, statement: str, parameters: Any, *_a: Any) -> None:
        into.append((statement, parameters))

    event.listen(crm.engine, "before_cursor_execute", record)
    try:
        yield
    finally:
        event.remove(crm.engine, "before_cursor_execute", record)


def report(results: list[Measured]) -> None:
    """p50, p95 and max per scenario, with PASS or FAIL against the target."""
    width = max(len(r.scenario.label) for r in results)
    print(f"  load average {os.getloadavg()[0]:.2f}; times in ms (CPU: this process's)")
    print(f"  {'scenario':<{width}}  {'p50':>7}  {'p95':>7}  {'max':>7}  {'CPU p50':>7}  "
          f"{'CPU p95':>7}")
    for result in results:
        p95 = result.percentile(95)
        verdict = "PASS" if p95 <= TARGET_P95_MS else "FAIL"
        print(f"  {result.scenario.label:<{width}}  {result.percentile(50):7.2f}  {p95:7.2f}  "
              f"{max(result.times):7.2f}  {result.percentile(50, cpu=True):7.2f}  "
              f"{result.percentile(95, cpu=True):7.2f}  {verdict} (p95 <= {TARGET_P95_MS:g} ms)")


def show_plans(crm: CRM, results: list[Measured]) -> None:
    """The plan of each statement the scenarios ran (SQLite: EXPLAIN QUERY PLAN;
    PostgreSQL: EXPLAIN ANALYZE)."""
    print("\n  Query plans:")
    with crm.engine.connect() as connection:
        for result in results:
            print(f"  {result.scenario.label}")
            for statement, parameters in result.statements:
                if "sales_" not in statement:
                    continue  # the actor's roles
                print(f"    {' '.join(statement.split())[:200]}")
                for line in _plan(connection, statement, parameters):
                    print(f"      {line}")


def _plan(connection: Connection, statement: str, parameters: Any) -> list[str]:
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
        return [row[-1] + ("   <-- FULL SCAN" if _full_scan(row[-1]) else "") for row in rows]
    rows = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}",
                                      parameters).all()
    return [row[0] for row in rows]


def _full_scan(detail: str) -> bool:
    """Whether a line of SQLite's plan scans a whole table (not a subquery's rows)."""
    words = detail.split()
    return (words[:1] == ["SCAN"] and "USING" not in words
            and not words[1].startswith(("anon_", "(subquery")))


# -- scratch databases -------------------------------------------------------------------------


@contextmanager
def sqlite_database(folder: Path) -> Iterator[str]:
    """A fresh SQLite file (deleted with the temporary folder)."""
    yield f"sqlite:///{folder / 'reports.sqlite3'}"


@contextmanager
def postgres_database(url: str) -> Iterator[str]:
    """A scratch database on the server of ``url``, dropped afterwards."""
    base = make_url(url)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"crm_bench_{uuid.uuid4().hex[:10]}_reports"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
