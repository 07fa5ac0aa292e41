"""``crm worker``: run background jobs and deliver outbox events."""

from __future__ import annotations

import logging

import click
from flask.cli import with_appcontext

from crm_core.cli.common import get_crm, require_current_database
from crm_core.errors import CRMError


@click.command("worker")
@click.option(
    "--threads",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Tasks run at once in this process (deliveries wait on the network mostly).",
)
@click.option(
    "--relay-interval",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0.01, 60),
    help="Seconds between two looks at the outbox for new events.",
)
@click.option("--no-periodic", is_flag=True, help="Do not run scheduled jobs in this worker.")
@click.option("-v", "--verbose", is_flag=True, help="Log every task.")
@with_appcontext
def worker(threads: int, relay_interval: float, no_periodic: bool, verbose: bool) -> None:
    """Run background jobs and deliver outbox events until Ctrl+C or SIGTERM.

    Start as many workers as you like, on as many machines as share the queue
    (``queue_url``: a SQLite file on one machine, Redis for several). Each one
    finishes the tasks in hand when asked to stop; a worker that is killed leaves
    its deliveries to be taken over once their lease (``event_lease_seconds``) ends.
    """
    from crm_core.jobs.worker import Worker

    crm = get_crm()
    require_current_database(crm)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        runner = Worker(
            crm, threads=threads, relay_interval=relay_interval, periodic=not no_periodic
        )
    except CRMError as exc:
        raise click.ClickException(str(exc)) from exc
    queue = crm.settings.queue_url.split("?", 1)[0]
    click.echo(
        f"crm worker: {threads} threads on {queue}; jobs: "
        f"{', '.join(sorted(crm.registry.jobs)) or 'none'}"
    )
    runner.run()
