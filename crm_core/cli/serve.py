"""``crm serve``: the development server."""

from __future__ import annotations

import gc
import os

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from werkzeug.serving import run_simple

from crm_core.cli.common import get_crm, require_current_database


def run_server(
    app: Flask, host: str, port: int, *, debug: bool = False, worker: bool = True
) -> None:
    """Serve ``app`` with werkzeug's development server until interrupted.

    With ``worker``, a :class:`~crm_core.jobs.worker.Worker` runs in the same process
    (two threads and the outbox relay), so that imports and webhooks work on one
    machine without starting ``crm worker`` as well.
    """
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Serving crm-core on http://{shown}:{port}/  (press CTRL+C to quit)")
    if debug:
        app.debug = True
    background = None
    crm = app.extensions["crm"]
    # With the reloader, the first process only watches files: the worker runs in its child.
    in_server_process = not debug or os.environ.get("WERKZEUG_RUN_MAIN") == "true"
    if worker and in_server_process and not crm.queue.immediate:
        from crm_core.jobs.worker import Worker

        background = Worker(crm, threads=2, embedded=True)
        background.start()
        click.echo("Running background jobs and webhook deliveries in this process.")
    # Everything alive now (the app, the CRM, plugins, templates) lives as long as the
    # server: keep it out of the cyclic GC's full collections, which otherwise pause a
    # request for ~120 ms every few hundred requests (bench/ui_pages.py).
    gc.freeze()
    try:
        run_simple(
            host,
            port,
            app,
            use_reloader=debug,
            use_debugger=debug,
            threaded=True,
        )
    finally:
        if background is not None:
            background.stop()


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--debug", is_flag=True, help="Reload on code changes, show the debugger on errors.")
@click.option(
    "--worker/--no-worker",
    default=True,
    show_default=True,
    help="Run background jobs and webhook deliveries in this process too.",
)
@with_appcontext
def serve(host: str, port: int, debug: bool, worker: bool) -> None:
    """Run the development server (not for production: use a WSGI server there).

    By default it also runs a worker, so one command serves a one-machine CRM; with
    a WSGI server (gunicorn...) run ``crm worker`` beside it instead.
    """
    require_current_database(get_crm())
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    run_server(app, host, port, debug=debug, worker=worker)
