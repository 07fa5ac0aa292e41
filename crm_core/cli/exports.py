"""``crm export`` and ``crm restore``: files of records, and the complete dump of the database.

``crm export contacts -o contacts.csv`` writes what a user may see (``--as``; without
it, everything, as the system); ``crm export --all -o dump.jsonl`` writes every row of
every table, which ``crm restore dump.jsonl`` loads into an empty database.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from crm_core.cli.common import get_crm, require_current_database
from crm_core.exports import FORMATS, atomic_file, format_for_path, prepare_export
from crm_core.exports.dump import restore, write_dump
from crm_core.exports.parallel import write_parallel
from crm_core.models import User
from crm_core.runtime import CRM


@click.command("export")
@with_appcontext
@click.argument("name", required=False)
@click.option(
    "--format",
    "format_name",
    type=click.Choice(sorted(FORMATS)),
    help="csv, jsonl or vcf (contacts); default: from the file's extension, else csv.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write (it appears when complete); default: standard output.",
)
@click.option(
    "--as",
    "as_email",
    metavar="USER_EMAIL",
    help="Export only what this user may see (default: every record, as the system).",
)
@click.option("--include-archived", is_flag=True, help="Archived records too.")
@click.option("--excel", is_flag=True, help="Start a CSV file with a BOM, so Excel reads UTF-8.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Processes that read and write records at once (default: the CPU count, at most 4).",
)
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="The complete dump of the database (JSON Lines) for `crm restore`.",
)
def export_command(
    name: str | None,
    format_name: str | None,
    output: Path | None,
    as_email: str | None,
    include_archived: bool,
    excel: bool,
    jobs: int | None,
    everything: bool,
) -> None:
    """Export NAME (customers, contacts, interactions or a plugin's) as CSV, JSON Lines or vCard.

    With --all, write the complete, versioned dump of every table instead.
    """
    crm = get_crm()
    require_current_database(crm)
    if everything:
        if (
            name
            or as_email
            or include_archived
            or excel
            or jobs
            or format_name not in (None, "jsonl")
        ):
            raise click.UsageError(
                "--all dumps every row of every table as JSON Lines: give only -o FILE"
            )
        summary = _write(output, lambda out: write_dump(crm, out))
        tables = sum(1 for count in summary.counts.values() if count)
        click.echo(f"dumped {summary.rows:,} rows of {tables} tables", err=True)
        return
    if not name:
        raise click.UsageError("name what to export (e.g. `crm export contacts`), or give --all")
    chosen = format_name or (format_for_path(output) if output is not None else None) or "csv"
    export = prepare_export(
        crm,
        name,
        chosen,
        actor=_actor(crm, as_email),
        include_archived=include_archived,
        excel=excel,
    )
    jobs = jobs or min(os.cpu_count() or 1, 4)
    rows = _write(output, lambda out: write_parallel(export, out, jobs))
    where = f"to {output}" if output is not None else ""
    click.echo(f"exported {rows:,} {export.source.name} as {chosen} {where}".rstrip(), err=True)


@click.command("restore")
@with_appcontext
@click.argument("dump", type=click.File("rb"))
def restore_command(dump: BinaryIO) -> None:
    """Load DUMP (from `crm export --all`; - for standard input) into an empty database.

    The database is migrated first when it has no tables; it must be empty and at the
    migration revisions of the dump. All rows are loaded in one transaction.
    """
    crm = get_crm()
    summary = restore(crm, dump)
    tables = sum(1 for count in summary.counts.values() if count)
    click.echo(f"restored {summary.rows:,} rows of {tables} tables")


def _write(output: Path | None, write: Any) -> Any:
    """``write(binary file)`` to ``output`` (complete or not at all), else to standard output."""
    if output is None:
        sys.stdout.flush()
        stream = sys.stdout.buffer
        result = write(stream)
        stream.flush()
        return result
    with atomic_file(output) as out:
        return write(out)


def _actor(crm: CRM, email: str | None) -> User | None:
    """The user ``--as`` names, with their roles; ``None`` (the system) without ``--as``."""
    if email is None:
        return None
    with crm.session_factory() as session:
        user = session.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            raise click.BadParameter(f"no user {email!r}", param_hint="--as")
        if not user.active:
            raise click.BadParameter(f"{email!r} is deactivated", param_hint="--as")
        return user  # its roles and team are loaded with it (``lazy="selectin"``)
