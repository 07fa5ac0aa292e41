"""``crm sales ...``: crm-sales's commands, one click group the parts add theirs to."""

from __future__ import annotations

import time

import click
from flask import current_app
from flask.cli import with_appcontext

from crm_sales.services import funnel_store


@click.group("sales")
def sales_group() -> None:
    """crm-sales: its maintenance commands (deals import with `crm import opportunities`)."""


@sales_group.command("rebuild-funnel")
@click.option("--pipeline", "pipeline_id", type=click.IntRange(min=1), default=None,
              help="Only this pipeline's deals (by id).")
@with_appcontext
def rebuild_funnel(pipeline_id: int | None) -> None:
    """Sum the funnel's figures per day again from the deals.

    The services keep the sums as deals change; run this after changing deals or their
    stage history with SQL by hand, or restoring some of their tables from a backup.
    """
    crm = current_app.extensions["crm"]
    started = time.perf_counter()
    with crm.unit_of_work(source="cli") as uow:
        stage_rows, outcome_rows = funnel_store.rebuild(uow.session, pipeline_id)
    click.echo(f"Funnel sums rebuilt: {stage_rows:,} stage rows, {outcome_rows:,} outcome "
               f"rows in {time.perf_counter() - started:.1f} s.")
