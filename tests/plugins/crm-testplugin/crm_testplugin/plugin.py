"""Hook implementations of crm-testplugin (the module its entry point names)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, insert, select

from crm_core import PluginManifest, RecordChange, UnitOfWork, hookimpl
from crm_core.authz import visible
from crm_core.extensions import Channel, Exporter, Permission
from crm_core.models import Customer
from crm_testplugin.models import WelcomeTask

manifest = PluginManifest(
    core_api=">=1.0,<2",
    description="Creates a welcome task for every new customer (crm-core's test plugin).",
)

MIGRATIONS = Path(__file__).parent / "migrations" / "versions"


@hookimpl
def crm_register_models() -> list[type[Any]]:
    """The plugin's table."""
    return [WelcomeTask]


@hookimpl
def crm_register_migrations() -> list[str]:
    """The plugin's migration branch ``crm_testplugin``."""
    return [str(MIGRATIONS)]


@hookimpl
def crm_register_permissions() -> list[Permission]:
    """Who may see welcome tasks."""
    return [Permission("testplugin.task.view", "See welcome tasks")]


@hookimpl
def crm_register_exporters() -> list[Exporter]:
    """``crm export testplugin_tasks``: the welcome tasks of the customers one may see."""
    return [
        Exporter(
            "testplugin_tasks",
            "testplugin.task.view",
            model=WelcomeTask,
            visibility=lambda actor: WelcomeTask.customer_id.in_(
                select(Customer.id).where(visible(actor, "customer"))
            ),
            description="Welcome tasks, one per customer.",
        )
    ]


@hookimpl
def crm_register_channels() -> list[Channel]:
    """A channel no core CRM has."""
    return [Channel("carrier_pigeon", label="Carrier pigeon", directional=True)]


@hookimpl
def crm_on_customers_created(uow: UnitOfWork, changes: Sequence[RecordChange]) -> None:
    """Add one welcome task per created customer, in one executemany for the whole batch."""
    rows = [
        {"customer_id": change.record.id, "title": f"Welcome {change.record.name}"}
        for change in changes
        if change.record is not None
    ]
    if rows:
        uow.session.execute(insert(WelcomeTask), rows)


@click.command("testplugin-tasks")
@with_appcontext
def tasks_command() -> None:
    """Print how many welcome tasks there are."""
    crm = current_app.extensions["crm"]
    with crm.session_factory() as session:
        count = session.scalar(select(func.count()).select_from(WelcomeTask)) or 0
    click.echo(f"{count} welcome tasks")


@hookimpl
def crm_register_commands() -> list[click.Command]:
    """``crm testplugin-tasks``."""
    return [tasks_command]
