"""Benchmark: the REST API served by gunicorn (2 sync workers), 4 concurrent clients.

Three scenarios, each bounded in time and in requests, load driven from 127.0.0.1:
(a) ``POST /api/v1/contacts`` (token auth, validation, audit, outbox) against the
issue's target of 500 requests/s; (b) ``GET /api/v1/customers/<id>`` through the whole
stack against (c) a bare Flask endpoint reading the same row (``bench/bare_app.py``)
under the same gunicorn set-up, reported as a ratio. Run
``python bench/api_throughput.py --help``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, func, select

from crm_core import CRM, migrate
from crm_core.config import load_settings
from crm_core.db import create_db_engine
from crm_core.models import AuditEntry, Contact, OutboxEvent
from crm_core.services import customers, tokens, users

BENCH = Path(__file__).resolve().parent
SECRET_KEY = "crm-bench-throughput-secret-key"
ADMIN_EMAIL = "bench-admin@example.com"
WORKERS = 2
TARGET_POST_RATE = 500.0
HEALTH_TIMEOUT = 60.0
#: wrk's own run time beyond the scenario's: every thread stops itself after a response
#: once the scenario's time is up, long before wrk would stop it with a request in flight.
WRK_SLACK = 5

#: One wrk thread per connection; each stops itself after a complete response once its
#: time or request budget is spent, so no request is left in flight (each created contact
#: was answered). Times come from CLOCK_MONOTONIC through LuaJIT's FFI, because wrk's
#: own duration is its -d, not the time the threads ran.
WRK_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } crm_bench_timespec;
int clock_gettime(int clock_id, crm_bench_timespec *tp);
]]
local clock = ffi.new("crm_bench_timespec")
local function now()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) / 1e9
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end

function init(args)
  method, path, token = args[1], args[2], args[3]
  seconds, limit = tonumber(args[4]), tonumber(args[5])
  tag, customer_id, expected = args[6], tonumber(args[7]), tonumber(args[8])
  request_headers = {}
  if token ~= "-" then request_headers["Authorization"] = "Bearer " .. token end
  if method == "POST" then request_headers["Content-Type"] = "application/json" end
  sent, ok, failed, first_sent, last_done, failure = 0, 0, 0, 0, 0, ""
  non_2xx, server_errors = 0, 0
end

function request()
  sent = sent + 1
  if sent == 1 then
    first_sent = now()
    deadline = first_sent + seconds
  end
  local body = nil
  if method == "POST" then
    local n = thread_no * 1000000 + sent
    body = string.format(
      '{"customer_id":%d,"first_name":"Bench","last_name":"%s %d","job_title":"Buyer",' ..
      '"emails":[{"label":"work","email":"%s.%d@example.com"}],' ..
      '"phones":[{"label":"work","number":"+49 30 %08d"}]}',
      customer_id, tag, n, tag, n, 40000000 + n)
  end
  return wrk.format(method, path, request_headers, body)
end

function response(status, headers, body)
  last_done = now()
  if status < 200 or status > 299 then non_2xx = non_2xx + 1 end
  if status >= 500 then server_errors = server_errors + 1 end
  if status == expected then
    ok = ok + 1
  else
    failed = failed + 1
    if failure == "" then failure = status .. " " .. string.sub(body or "", 1, 300) end
  end
  if last_done >= deadline or ok + failed >= limit then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local ok, failed, first, last, failure = 0, 0, math.huge, 0, ""
  local non_2xx, server_errors = 0, 0
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("ok")
    failed = failed + thread:get("failed")
    non_2xx = non_2xx + thread:get("non_2xx")
    server_errors = server_errors + thread:get("server_errors")
    if thread:get("sent") > 0 then first = math.min(first, thread:get("first_sent")) end
    last = math.max(last, thread:get("last_done"))
    if failure == "" then failure = thread:get("failure") end
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"ok":%d,"failed":%d,"seconds":%.6f,"p50":%d,"p95":%d,"max":%d,' ..
    '"socket_errors":%d,"non_2xx":%d,"server_errors":%d}\n',
    ok, failed, last - first, latency:percentile(50), latency:percentile(95), latency.max,
    e.connect + e.read + e.write + e.timeout, non_2xx, server_errors))
  io.write("FAILURE " .. failure .. "\n")
end
"""


@dataclass
class Fixture:
    """The prepared database: its URL, the admin's token and the customer to read."""

    url: str
    token: str
    customer_id: int


@dataclass
class Load:
    """What one scenario asks of the server."""

    label: str
    method: str
    path: str
    token: str | None
    expected: int
    customer_id: int = 0
    """The customer the contacts of a POST belong to."""


@dataclass
class LoadResult:
    """One scenario's outcome."""

    load: Load
    ok: int
    failed: int
    socket_errors: int
    seconds: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    non_2xx: int = 0
    """Answers whose status is not 2xx (whatever the scenario expected)."""
    server_errors: int = 0
    """Answers 5xx: the server failed (a 5xx fails the benchmark)."""
    failure: str = ""
    server_cpu_ms: float | None = None
    """CPU time of gunicorn (master and workers) per answered request, when known."""
    others_cores: float | None = None
    """Cores that other processes kept busy during the scenario, when known."""
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Answered requests (of the expected status) per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        """Unexpected statuses plus connection, read, write and timeout errors."""
        return self.failed + self.socket_errors


def main(argv: Sequence[str] | None = None) -> None:
    """Parse options, prepare the database, serve it with gunicorn and drive the load."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="time per scenario")
    parser.add_argument(
        "--max-requests", type=int, default=100_000, help="request budget per scenario"
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per scenario")
    parser.add_argument(
        "--driver", choices=("auto", "wrk", "python"), default="auto",
        help="load generator: wrk (if installed; the default) or Python threads (http.client)",
    )
    parser.add_argument(
        "--keep", type=Path, default=None,
        help="copy the database and gunicorn logs to this folder at the end",
    )
    args = parser.parse_args(argv)
    wrk = shutil.which("wrk")
    if args.driver == "wrk" and wrk is None:
        parser.error("wrk is not installed (apt-get install wrk), use --driver python")
    use_wrk = wrk is not None and args.driver != "python"
    driver = _wrk_version(wrk) if use_wrk and wrk else "Python threads (http.client)"
    print(
        f"crm-core API throughput: gunicorn {WORKERS} sync workers, {args.clients} clients on "
        f"127.0.0.1, {args.seconds:g} s or {args.max_requests:,} requests per scenario "
        f"(after {args.warmup:g} s of warm-up); load from {driver}"
    )
    print(machine_load())
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="crm-bench-api-") as name:
        folder = Path(name)
        try:
            fixture = prepare(folder)
            env = server_environment(fixture.url, folder)

            def drive(load: Load, server: Server) -> LoadResult:
                """Warm up, then measure ``load``."""
                if args.warmup > 0:
                    warm = Load(f"{load.label} warm-up", load.method, load.path, load.token,
                                load.expected, load.customer_id)
                    run_load(warm, server.port, args.clients, args.warmup, args.max_requests,
                             use_wrk, folder, tag="warmup")
                return measured(server, lambda: run_load(
                    load, server.port, args.clients, args.seconds, args.max_requests, use_wrk,
                    folder, tag="bench"))

            with gunicorn("crm_core:create_app()", env, folder, "crm") as server:
                port = server.port
                post = Load("(a) POST /api/v1/contacts", "POST", "/api/v1/contacts",
                            fixture.token, 201, fixture.customer_id)
                before = contact_counts(fixture.url)
                if args.warmup > 0:
                    warm = Load("warm-up", post.method, post.path, post.token, 201,
                                fixture.customer_id)
                    warmed = run_load(warm, port, args.clients, args.warmup,
                                      args.max_requests, use_wrk, folder, tag="warmup")
                    before = _expect_stored(fixture.url, before, warmed, failures,
                                            args.clients)
                created = measured(server, lambda: run_load(
                    post, port, args.clients, args.seconds, args.max_requests, use_wrk, folder,
                    tag="bench"))
                _expect_stored(fixture.url, before, created, failures, args.clients)
                report(created, target=TARGET_POST_RATE)
                full = drive(Load(f"(b) GET /api/v1/customers/{fixture.customer_id}", "GET",
                                  f"/api/v1/customers/{fixture.customer_id}", fixture.token,
                                  200), server)
                report(full)
            with gunicorn("bare_app:create_app()", env, folder, "bare",
                          pythonpath=BENCH) as server:
                bare = drive(Load(f"(c) GET /customers/{fixture.customer_id} (bare Flask)",
                                  "GET", f"/customers/{fixture.customer_id}", None, 200), server)
                report(bare)
            ratio = full.rate / bare.rate if bare.rate else math.nan
            print(f"  ratio (b) / (c): {ratio:.2f} (the whole stack serves {ratio:.0%} of the "
                  f"bare endpoint's rate: {WORKERS * 1e3 / full.rate:.2f} ms vs "
                  f"{WORKERS * 1e3 / bare.rate:.2f} ms per request and worker)")
            for result in (created, full, bare):
                if result.server_errors:
                    failures.append(f"{result.load.label}: {result.server_errors} answers 5xx")
                if result.errors:
                    failures.append(f"{result.load.label}: {result.errors} errors "
                                    f"(first: {result.failure or 'connection error'})")
        finally:
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                for path in folder.iterdir():
                    if path.is_file():
                        shutil.copy2(path, args.keep / path.name)
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        raise SystemExit(1)


def machine_load() -> str:
    """The 1-minute load average and the CPUs, with a warning when other work competes."""
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    busy = "  (other processes are running: the figures come out pessimistic)" if load > 0.5 else ""
    return f"load average {load:.2f} on {cpus} CPUs before the run{busy}"


# -- the database --------------------------------------------------------------------------


def prepare(folder: Path) -> Fixture:
    """A migrated SQLite file with an admin, a token of theirs and one customer."""
    url = f"sqlite:///{folder / 'crm.sqlite3'}"
    settings = load_settings(
        {"database_url": url, "instance_path": str(folder), "secret_key": SECRET_KEY,
         "plugins": []},
        environ={},
    )
    crm = CRM(settings, discover_plugins=False)
    try:
        migrate.upgrade(crm)
        with crm.unit_of_work(source="bench") as uow:
            users.ensure_default_roles(uow)
            admin = users.create(uow, {"email": ADMIN_EMAIL, "name": "Bench Admin",
                                       "password": "bench-password", "roles": ["admin"]})
            _token, plain = tokens.create(uow, admin, name="api_throughput")
            customer = customers.create(uow, {
                "name": "Nakatomi Trading GmbH", "email": "info@nakatomi.example",
                "phone": "+49 30 30000001", "city": "Berlin", "country": "DE",
                "industry": "Trading", "lifecycle_stage": "customer", "owner_id": admin.id,
                "tags": ["key-account"],
            })
            customer_id = customer.id
    finally:
        crm.dispose()
    return Fixture(url, plain, customer_id)


def contact_counts(url: str) -> tuple[int, int, int]:
    """Contacts, their audit entries and their outbox events, once no request adds any.

    Counted in one read transaction, again every 0.2 s (up to 5 s) until two counts
    agree: a request the load generator sent as it stopped may still be committing.
    """
    engine = create_db_engine(load_settings({"database_url": url}, environ={}))
    try:
        counts = _contact_counts(engine)
        for _ in range(25):
            time.sleep(0.2)
            again = _contact_counts(engine)
            if again == counts:
                break
            counts = again
        return counts
    finally:
        engine.dispose()


def _contact_counts(engine: Engine) -> tuple[int, int, int]:
    with engine.begin() as connection:  # crm-core's engine set-up: one BEGIN, one snapshot
        return (
            connection.scalar(select(func.count()).select_from(Contact)) or 0,
            connection.scalar(select(func.count()).select_from(AuditEntry)
                              .where(AuditEntry.entity == "contact")) or 0,
            connection.scalar(select(func.count()).select_from(OutboxEvent)
                              .where(OutboxEvent.entity == "contact")) or 0,
        )


def _expect_stored(
    url: str, before: tuple[int, int, int], result: LoadResult, failures: list[str],
    clients: int,
) -> tuple[int, int, int]:
    """Check that the database gained one contact, audit entry and outbox event per 201.

    Beyond those, each of the ``clients`` connections may have had one request stored
    whose answer the load generator did not read because it stopped (wrk sometimes sends
    a last request as it exits): such requests are counted and reported, not failed.
    """
    after = contact_counts(url)
    gained = [now - then for now, then in zip(after, before, strict=True)]
    unanswered = gained[0] - result.ok
    line = (f"contacts stored: {gained[0]:,} for {result.ok:,} answers 201 "
            f"(audit entries {gained[1]:,}, outbox events {gained[2]:,})")
    if unanswered:
        line += f"; {unanswered} sent as the load generator stopped, answer not read"
    if len(set(gained)) != 1 or not 0 <= unanswered <= clients:
        failures.append(f"{result.load.label}: {line}")
        line += "  MISMATCH"
    result.notes.append(line)
    return after


# -- gunicorn ------------------------------------------------------------------------------


def server_environment(url: str, folder: Path) -> dict[str, str]:
    """The environment of both servers: this one's, minus any CRM_* variable, plus ours."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRM_")}
    env.update({
        "CRM_DATABASE_URL": url,
        "CRM_PLUGINS": ",",  # an empty allow-list (an empty variable would count as unset)
        "CRM_SECRET_KEY": SECRET_KEY,
        "CRM_INSTANCE_PATH": str(folder),
    })
    return env


@dataclass
class Server:
    """A running gunicorn: its port, and its master's pid (also its process group's id)."""

    port: int
    pid: int

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) used so far by the master and its workers; Linux only."""
        total = 0
        try:
            stats = [path / "stat" for path in Path("/proc").iterdir() if path.name.isdigit()]
        except OSError:
            return None
        for stat in stats:
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # a process that ended meanwhile
            if int(fields[2]) == self.pid:  # pgrp; then utime and stime, in clock ticks
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")


def measured(server: Server, run: Callable[[], LoadResult]) -> LoadResult:
    """``run()``, noting the server's CPU time per answered request in the result.

    Also notes how many cores other processes (neither the server nor this benchmark and
    its load generator) kept busy meanwhile: the figures are pessimistic when that is
    more than a few hundredths.
    """
    before, machine_before, own_before = server.cpu_seconds(), _machine_busy(), _own_cpu()
    began = time.monotonic()
    result = run()
    elapsed = time.monotonic() - began
    after, machine_after, own_after = server.cpu_seconds(), _machine_busy(), _own_cpu()
    answered = result.ok + result.failed
    if before is None or after is None or machine_before is None or machine_after is None:
        return result
    if answered:
        result.server_cpu_ms = (after - before) / answered * 1e3
    others = (machine_after - machine_before) - (after - before) - (own_after - own_before)
    result.others_cores = max(0.0, others / elapsed)
    return result


def _machine_busy() -> float | None:
    """CPU seconds all processes used since boot (Linux's /proc/stat), or ``None``."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(value) for value in fields]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


def _own_cpu() -> float:
    """CPU seconds of this process and of its finished children (wrk)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@contextmanager
def gunicorn(
    app: str, env: dict[str, str], folder: Path, name: str, *, pythonpath: Path | None = None
) -> Iterator[Server]:
    """Serve ``app`` with gunicorn's sync workers on a free port of 127.0.0.1; stop it after.

    The server runs in a process group of its own, so that it and its workers can be
    stopped together, even when the benchmark fails.
    """
    port = _free_port()
    log = folder / f"{name}-gunicorn.log"
    command = [
        sys.executable, "-m", "gunicorn", "--workers", str(WORKERS), "--worker-class", "sync",
        "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "--error-logfile", str(log),
    ]
    if pythonpath is not None:
        command += ["--pythonpath", str(pythonpath)]
    command.append(app)
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, env=env, cwd=folder, stdout=output, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    try:
        _wait_healthy(process, port, log)
        yield Server(port, process.pid)
    finally:
        _stop(process)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_healthy(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Wait until ``GET /healthz`` answers 200; fail with the server's log if it never does."""
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}:\n{_tail(log)}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.1)
    raise SystemExit(f"gunicorn did not become healthy in {HEALTH_TIMEOUT:.0f} s:\n{_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop gunicorn gracefully (SIGTERM to the master), then make sure its group is gone."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Workers left behind by a master that died: the group is ours (start_new_session).
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# -- load ----------------------------------------------------------------------------------


def run_load(
    load: Load, port: int, clients: int, seconds: float, max_requests: int, use_wrk: bool,
    folder: Path, *, tag: str,
) -> LoadResult:
    """Drive ``load`` with ``clients`` concurrent connections for ``seconds`` at most."""
    per_client = max(1, math.ceil(max_requests / clients))
    if use_wrk:
        return _run_wrk(load, port, clients, seconds, per_client, folder, tag)
    return _run_threads(load, port, clients, seconds, per_client, tag)


def _run_wrk(
    load: Load, port: int, clients: int, seconds: float, per_client: int, folder: Path, tag: str
) -> LoadResult:
    script = folder / "scenario.lua"
    script.write_text(WRK_SCRIPT)
    command = [
        "wrk", "--threads", str(clients), "--connections", str(clients),
        "--duration", f"{math.ceil(seconds) + WRK_SLACK}s", "--timeout", "10s",
        "--script", str(script), f"http://127.0.0.1:{port}{load.path}", "--",
        load.method, load.path, load.token or "-", str(seconds), str(per_client), tag,
        str(load.customer_id), str(load.expected),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = finished.stdout.splitlines()
    found = [line for line in lines if line.startswith("RESULT ")]
    if finished.returncode != 0 or not found:
        raise SystemExit(f"wrk failed ({finished.returncode}):\n{finished.stdout}\n"
                         f"{finished.stderr}")
    data = json.loads(found[0].removeprefix("RESULT "))
    failure = next((line[8:] for line in lines if line.startswith("FAILURE ")), "")
    return LoadResult(
        load, ok=data["ok"], failed=data["failed"], socket_errors=data["socket_errors"],
        seconds=data["seconds"], p50_ms=data["p50"] / 1e3, p95_ms=data["p95"] / 1e3,
        max_ms=data["max"] / 1e3, non_2xx=data["non_2xx"],
        server_errors=data["server_errors"], failure=failure,
    )


def _run_threads(
    load: Load, port: int, clients: int, seconds: float, per_client: int, tag: str
) -> LoadResult:
    """The same load from Python threads, one ``http.client`` connection each.

    gunicorn's sync workers close every connection after the response; ``http.client``
    then opens a new one for the next request, as wrk does.
    """
    headers = {"Authorization": f"Bearer {load.token}"} if load.token else {}
    if load.method == "POST":
        headers["Content-Type"] = "application/json"
    latencies: list[float] = []
    counts = {"ok": 0, "failed": 0, "socket": 0, "non_2xx": 0, "server_errors": 0}
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)
    spans: list[tuple[float, float]] = []

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        ok = failed = broken = non_2xx = server_errors = 0
        start.wait()
        began = time.perf_counter()
        deadline = began + seconds
        last = began
        for sent in range(1, per_client + 1):
            body = None
            if load.method == "POST":
                n = number * 1_000_000 + sent
                body = json.dumps({
                    "customer_id": load.customer_id, "first_name": "Bench",
                    "last_name": f"{tag} {n}", "job_title": "Buyer",
                    "emails": [{"label": "work", "email": f"{tag}.{n}@example.com"}],
                    "phones": [{"label": "work", "number": f"+49 30 {40_000_000 + n:08d}"}],
                })
            sent_at = time.perf_counter()
            try:
                connection.request(load.method, load.path, body, headers)
                response = connection.getresponse()
                text = response.read()
            except (OSError, http.client.HTTPException):
                broken += 1
                connection.close()
                last = time.perf_counter()
            else:
                last = time.perf_counter()
                mine.append(last - sent_at)
                non_2xx += not 200 <= response.status <= 299
                server_errors += response.status >= 500
                if response.status == load.expected:
                    ok += 1
                else:
                    failed += 1
                    if not failures:
                        failures.append(f"{response.status} {text[:300].decode(errors='replace')}")
            if last >= deadline:
                break
        connection.close()
        with lock:
            latencies.extend(mine)
            counts["ok"] += ok
            counts["failed"] += failed
            counts["socket"] += broken
            counts["non_2xx"] += non_2xx
            counts["server_errors"] += server_errors
            spans.append((began, last))

    workers = [threading.Thread(target=client, args=(n + 1,)) for n in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    latencies.sort()
    elapsed = max(end for _, end in spans) - min(begin for begin, _ in spans)
    return LoadResult(
        load, ok=counts["ok"], failed=counts["failed"], socket_errors=counts["socket"],
        seconds=elapsed, p50_ms=_percentile(latencies, 50) * 1e3,
        p95_ms=_percentile(latencies, 95) * 1e3,
        max_ms=(latencies[-1] if latencies else 0.0) * 1e3,
        non_2xx=counts["non_2xx"], server_errors=counts["server_errors"],
        failure=failures[0] if failures else "",
    )


def _percentile(ordered: list[float], percent: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def _wrk_version(path: str) -> str:
    output = subprocess.run([path, "-v"], capture_output=True, text=True, check=False)
    first = (output.stdout or output.stderr).splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk"


# -- output --------------------------------------------------------------------------------


def report(result: LoadResult, *, target: float | None = None) -> None:
    """Print one scenario's figures (and its verdict against ``target`` requests/s)."""
    verdict = ""
    if target is not None:
        verdict = f"   target >= {target:,.0f} req/s: {'PASS' if result.rate >= target else 'FAIL'}"
    print(f"  {result.load.label:<44} {result.rate:>7,.0f} req/s  p50 {result.p50_ms:6.1f} ms"
          f"  p95 {result.p95_ms:6.1f} ms  max {result.max_ms:6.1f} ms  "
          f"{result.ok:>6,} in {result.seconds:4.1f} s  errors {result.errors}{verdict}")
    cpu = (f"; server CPU {result.server_cpu_ms:.2f} ms per request"
           if result.server_cpu_ms is not None else "")
    if result.others_cores is not None:
        cpu += f"; other processes busy {result.others_cores:.2f} cores"
    print(f"      non-2xx answers {result.non_2xx:,} (5xx: {result.server_errors:,}){cpu}")
    if result.errors:
        print(f"      first error: {result.failure or 'connection error'}")
    for note in result.notes:
        print(f"      {note}")


if __name__ == "__main__":
    main()
