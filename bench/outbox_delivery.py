"""Benchmark: outbox events delivered to a local webhook receiver by ``crm worker`` processes.

Commits ``--events`` customer events (one webhook subscribed to them) before the clock
starts, then starts ``--workers`` ``crm worker`` processes and times until every
delivery is recorded as delivered. Prints events/s and checks that no event was lost
and none reached the receiver's idempotent store twice. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import func, inspect, select

from crm_core import CRM, migrate
from crm_core.config import load_settings
from crm_core.models import DeliveryAttempt, EventDelivery, OutboxEvent, Webhook
from crm_core.services import customers
from crm_core.testing import WebhookReceiver

SECRET = "whsec_bench-secret-0123456789abcdef"


def main() -> None:
    """Parse options, prepare the events, run the workers, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="crm worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--queue", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument(
        "--database-url",
        default=None,
        help="an EMPTY database to migrate and fill, e.g. a scratch PostgreSQL database "
        "(default: a SQLite file in a temporary folder)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="crm-outbox-") as folder:
        root = Path(folder)
        queue_url = (
            f"sqlite:///{root / 'queue.sqlite3'}"
            if args.queue == "sqlite"
            else f"{args.redis_url}?queue=bench-{uuid.uuid4().hex[:8]}"
        )
        settings = load_settings(
            {
                "instance_path": str(root),
                "database_url": args.database_url or f"sqlite:///{root / 'crm.sqlite3'}",
                "secret_key": "bench-secret-key-0123456789abcdef",
                "queue_url": queue_url,
                "plugins": [],
            },
            environ={},
        )
        crm = CRM(settings, discover_plugins=False)
        if inspect(crm.engine).get_table_names():
            raise SystemExit(f"{args.database_url} is not empty: give a scratch database")
        migrate.upgrade(crm)
        with WebhookReceiver(SECRET) as receiver:
            prepare(crm, receiver.url, args.events)
            seconds = run_workers(crm, args.workers, args.threads, args.events)
            report(crm, receiver, args, seconds)
        if args.queue == "redis":
            crm.queue.huey.flush()
        crm.dispose()


def prepare(crm: CRM, url: str, events: int) -> None:
    """One webhook for ``customer.created`` and ``events`` customers (committed)."""
    with crm.unit_of_work(source="bench") as uow:
        uow.session.add(Webhook(url=url, secret=SECRET, event_types=["customer.created"]))
    for start in range(0, events, 1000):
        with crm.unit_of_work(source="bench") as uow:
            rows = [{"name": f"Customer {i}"} for i in range(start, min(start + 1000, events))]
            customers.bulk_create(uow, rows)


def run_workers(crm: CRM, workers: int, threads: int, events: int) -> float:
    """Start the workers, wait for every delivery, stop them; return the seconds taken."""
    env = {
        **os.environ,
        "CRM_DATABASE_URL": crm.settings.database_url,
        "CRM_INSTANCE_PATH": str(crm.settings.instance_path),
        "CRM_SECRET_KEY": crm.settings.secret_key,
        "CRM_QUEUE_URL": crm.settings.queue_url,
        "CRM_PLUGINS": ",",
    }
    command = [str(Path(sys.executable).with_name("crm")), "worker", "--threads", str(threads)]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
        for _ in range(workers)
    ]
    try:
        while delivered(crm) < events:
            if any(process.poll() is not None for process in processes):
                raise SystemExit("a worker exited early")
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)


def delivered(crm: CRM) -> int:
    """Deliveries recorded as delivered."""
    with crm.session_factory() as session:
        return session.scalar(select(func.count()).where(EventDelivery.status == "delivered")) or 0


def report(crm: CRM, receiver: WebhookReceiver, args: argparse.Namespace, seconds: float) -> None:
    """Print the rate and the checks; exit 1 if an event was lost or stored twice."""
    with crm.session_factory() as session:
        event_ids = set(session.scalars(select(OutboxEvent.id)))
        deliveries = session.scalar(select(func.count()).select_from(EventDelivery))
        attempts = session.scalar(select(func.count()).select_from(DeliveryAttempt))
    lost = event_ids - set(receiver.store)
    print(
        f"{args.events:,} events, {args.workers} workers x {args.threads} threads, "
        f"queue {args.queue}, database {crm.settings.url.get_backend_name()}"
    )
    print(f"  delivered in {seconds:.2f} s: {args.events / seconds:,.0f} events/s")
    print(
        f"  receiver: {len(receiver.receipts):,} requests, {len(receiver.store):,} distinct "
        f"events; deliveries {deliveries:,}, attempts {attempts:,}; "
        f"lost {len(lost)}, bad signatures {receiver.bad_signatures}"
    )
    duplicates = len(receiver.receipts) - len(receiver.store)
    print(f"  delivered twice to the receiver (at-least-once repeats): {duplicates}")
    if lost or len(receiver.store) != args.events or deliveries != args.events:
        raise SystemExit("FAIL: an event was lost or delivered through two rows")
    print("  PASS: every event delivered; each stored once")


if __name__ == "__main__":
    main()
