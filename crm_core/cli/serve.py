"""``crm serve``: the development server."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from werkzeug.serving import run_simple

from crm_core.cli.common import get_crm, require_current_database


def run_server(app: Flask, host: str, port: int, *, debug: bool = False) -> None:
    """Serve ``app`` with werkzeug's development server until interrupted."""
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Serving crm-core on http://{shown}:{port}/  (press CTRL+C to quit)")
    if debug:
        app.debug = True
    run_simple(
        host,
        port,
        app,
        use_reloader=debug,
        use_debugger=debug,
        threaded=True,
    )


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--debug", is_flag=True, help="Reload on code changes, show the debugger on errors.")
@with_appcontext
def serve(host: str, port: int, debug: bool) -> None:
    """Run the development server (not for production: use a WSGI server there)."""
    require_current_database(get_crm())
    run_server(current_app._get_current_object(), host, port, debug=debug)  # type: ignore[attr-defined]
