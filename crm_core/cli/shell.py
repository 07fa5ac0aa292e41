"""``crm shell``: Python in the app context, with the CRM, a session, models and services."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask, current_app
from flask.cli import shell_command, with_appcontext

from crm_core import models, services


def shell_context() -> dict[str, Any]:
    """The names ``crm shell`` starts with."""
    crm = current_app.extensions["crm"]
    namespace: dict[str, Any] = {
        "crm": crm,
        "session": crm.session_factory(),
        "models": models,
        "services": services,
    }
    namespace.update({name: getattr(models, name) for name in models.__all__})
    for name in ("customers", "contacts", "interactions", "merges", "tokens", "users"):
        namespace[name] = getattr(services, name)
    return namespace


def install_shell_context(app: Flask) -> None:
    """Register :func:`shell_context` on ``app`` once."""
    if shell_context not in app.shell_context_processors:
        app.shell_context_processor(shell_context)


@click.command("shell")
@with_appcontext
@click.pass_context
def shell(ctx: click.Context) -> None:
    """Start Python with `crm`, `session`, the models and the services imported.

    Writes go through services in a unit of work: `with crm.unit_of_work() as uow:
    customers.create(uow, {...})`.
    """
    install_shell_context(current_app._get_current_object())  # type: ignore[attr-defined]
    ctx.invoke(shell_command)
