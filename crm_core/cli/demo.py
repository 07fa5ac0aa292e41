"""``crm demo``: a database full of realistic data, then the development server."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from crm_core import migrate
from crm_core.cli.common import behind_branches, get_crm
from crm_core.cli.serve import run_server
from crm_core.demo import count_customers, generate_demo_data
from crm_core.runtime import CRM


def reset_database(crm: CRM) -> None:
    """Start from nothing: delete the SQLite file, or downgrade every branch to base."""
    url = crm.settings.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        crm.dispose()
        path = Path(str(url.database))
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        click.echo(f"Deleted {path}")
        return
    unknown = migrate.unknown_revisions(crm)
    if unknown:
        raise click.ClickException(
            f"cannot reset: the database has revisions of plugins that are not installed "
            f"({', '.join(unknown)}); see `crm db status`"
        )
    migrate.downgrade(crm, "base")
    click.echo("Downgraded every migration branch to base")


@click.command("demo")
@click.option(
    "--customers",
    default=200,
    show_default=True,
    type=click.IntRange(1, None),
    help="How many customers (companies and people) to create.",
)
@click.option(
    "--months",
    default=6,
    show_default=True,
    type=click.IntRange(1, 120),
    help="How many months of interactions, up to today.",
)
@click.option("--seed", default=42, show_default=True, help="Random seed: same seed, same data.")
@click.option(
    "--reset",
    is_flag=True,
    help="Delete everything in the database first (needed when it has customers).",
)
@click.option(
    "--serve/--no-serve",
    default=True,
    show_default=True,
    help="Start the development server afterwards.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@with_appcontext
def demo(
    customers: int, months: int, seed: int, reset: bool, serve: bool, host: str, port: int
) -> None:
    """Create the database, fill it with demo data, and serve it.

    The database is the configured one: by default the SQLite file in the instance
    folder. A database that holds customers is left alone unless --reset is given.
    """
    crm = get_crm()
    shown = crm.settings.url.render_as_string(hide_password=True)
    if reset:
        reset_database(crm)
    if behind_branches(crm):
        click.echo(f"Migrating {shown}")
        migrate.upgrade(crm)
    existing = count_customers(crm)
    if existing:
        raise click.ClickException(
            f"{shown} already holds {existing} customers. Run `crm demo --reset` to delete "
            "everything in it and start over, or `crm serve` to use it as it is."
        )
    with click.progressbar(length=customers, label="Creating demo data", show_pos=True) as bar:
        summary = generate_demo_data(
            crm, customers=customers, months=months, seed=seed, progress=bar.update
        )
    click.echo(
        f"Created {summary.customers} customers, {summary.contacts} contacts, "
        f"{summary.interactions} interactions and {summary.users} users in {shown}"
    )
    click.echo(f"Sign in as {summary.demo_email} with the password: {summary.demo_password}")
    click.echo(f"Sales users (same password): {', '.join(summary.sales_emails)}")
    if serve:
        run_server(current_app._get_current_object(), host, port)  # type: ignore[attr-defined]
