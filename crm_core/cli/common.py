"""Helpers shared by the ``crm`` commands."""

from __future__ import annotations

import click
from flask import current_app

from crm_core import migrate
from crm_core.runtime import CRM


def get_crm() -> CRM:
    """The CRM of the app the current command runs in."""
    crm: CRM = current_app.extensions["crm"]
    return crm


def behind_branches(crm: CRM) -> list[migrate.BranchStatus]:
    """The migration branches the database has not reached the head of."""
    return [branch for branch in migrate.status(crm) if not branch.up_to_date]


def require_current_database(crm: CRM) -> None:
    """Stop with a clear message when the database is not migrated to every head."""
    behind = behind_branches(crm)
    if behind:
        names = ", ".join(
            f"{b.branch} (at {b.current or 'nothing'}, head {b.head})" for b in behind
        )
        raise click.ClickException(
            f"the database {crm.settings.url.render_as_string(hide_password=True)} is not up "
            f"to date: {names}. Run `crm db upgrade` first."
        )


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Echo ``rows`` as left-aligned columns under ``headers``."""
    lines = [headers, *rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(*lines, strict=True)]
    for line in lines:
        cells = (str(cell).ljust(width) for cell, width in zip(line, widths, strict=True))
        click.echo("  ".join(cells).rstrip())
