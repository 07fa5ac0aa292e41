"""``crm import``: customers, contacts and interactions from CSV files, contacts from vCards.

``crm import customers|contacts|interactions FILE`` reads the format from the file's
extension (``.csv``, ``.tsv``/``.txt`` as CSV, ``.vcf`` for contacts), shows a
progress bar over the bytes read, and ends with a summary and the first rejected
rows. It exits with 0 whenever the import ran, rejected rows or not, and with an
error when the file cannot be read or an option is wrong. The import runs as the
system (every record visible, like the other commands) unless ``--as`` names a user,
whose permissions and visibility then apply and who owns the new records.

``crm import mappings`` lists saved mappings; ``crm import save-mapping`` saves one.

A plugin's importer that core runs (:func:`~crm_core.imports.plugin_importers`) gets a
subcommand of its own, ``crm import <name> FILE`` (crm-sales: ``crm import
opportunities``), added when the app is loaded: the same job, progress bar, summary and
report, without the options only core's entities have (``--mapping``, ``--match-on``,
``--on-match``). See docs/import.md.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup, ScriptInfo, with_appcontext
from sqlalchemy import select

from crm_core.cli.common import get_crm, print_table, require_current_database
from crm_core.errors import CRMError
from crm_core.extensions import Importer
from crm_core.imports import jobs
from crm_core.imports.mapping import MappingError, plugin_importer, plugin_importers
from crm_core.imports.runner import (
    MATCH_ON,
    ON_MATCH,
    ImportOptions,
    ImportSummary,
    format_for,
    preflight,
)
from crm_core.models import ImportJob, ImportMapping, ImportStatus
from crm_core.services import users

#: Rejected rows printed after the summary.
SHOWN_REJECTIONS = 10
#: Where the loaded app keeps the subcommands of the plugins' importers.
_IMPORTER_COMMANDS = "crm.importer_commands"


class ImportGroup(AppGroup):
    """``crm import``: core's subcommands, and one per plugin importer core runs."""

    def importer_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        """The subcommands of the loaded app's importers by name (core's names win)."""
        app = ctx.ensure_object(ScriptInfo).load_app()
        found: dict[str, click.Command] | None = app.extensions.get(_IMPORTER_COMMANDS)
        if found is None:
            found = {
                importer.name: _import_command(importer.name, importer)
                for importer in plugin_importers(app.extensions["crm"])
                if importer.name not in self.commands
            }
            app.extensions[_IMPORTER_COMMANDS] = found
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Core's subcommands, plus the importers' when the app can be loaded."""
        names = set(self.commands)
        with contextlib.suppress(click.ClickException):  # ``crm`` reports a broken app
            names.update(self.importer_commands(ctx))
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """A core subcommand, or the one of a plugin's importer."""
        core = self.commands.get(name)
        if core is not None:
            return core
        return self.importer_commands(ctx).get(name)


import_group = ImportGroup(
    "import", help="Import records from CSV or vCard files (docs/import.md)."
)


def parse_map(items: tuple[str, ...]) -> dict[str, str]:
    """``("Header=field", "Other=")`` -> ``{"Header": "field", "Other": ""}``."""
    columns: dict[str, str] = {}
    for item in items:
        header, sep, target = item.rpartition("=")
        if not sep or not header.strip():
            raise click.BadParameter(
                f"{item!r}: write HEADER=FIELD (HEADER= to ignore a column)", param_hint="--map"
            )
        columns[header.strip()] = target.strip()
    return columns


def _options(core: bool) -> list[Callable[[Any], Any]]:
    """The options of ``crm import <entity>``, in order; ``core``: with those of core's
    entities only (a saved mapping, matching stored records)."""
    mapping = [
        click.option("--mapping", "mapping_name", default=None, help="A saved mapping's name.")
    ]
    matching = [
        click.option(
            "--match-on",
            type=click.Choice(MATCH_ON),
            default=None,
            help="Key matching a row to a stored record (default auto: external id, else email).",
        ),
        click.option(
            "--on-match",
            type=click.Choice(ON_MATCH),
            default=None,
            help="What a matching row does (default update).",
        ),
    ]
    return [
        *(mapping if core else ()),
        click.option(
            "--map",
            "maps",
            multiple=True,
            metavar="HEADER=FIELD",
            help="Fill FIELD from column HEADER; HEADER= ignores the column (repeat).",
        ),
        click.option(
            "--delimiter", default=None, help="Column delimiter (default: detected; \\t)."
        ),
        click.option("--encoding", default=None, help="File encoding (default: detected)."),
        *(matching if core else ()),
        click.option(
            "--dry-run", is_flag=True, help="Validate and match everything, save nothing."
        ),
        click.option(
            "--report",
            "report_path",
            type=click.Path(dir_okay=False, writable=True, path_type=Path),
            default=None,
            help="Write every rejected row to this CSV file (line,column,value,reason).",
        ),
        click.option("--as", "as_email", default=None, metavar="EMAIL", help="Act as this user."),
    ]


def _import_command(plural: str, importer: Importer | None = None) -> click.Command:
    """``crm import <plural> FILE...``: core's entity ``plural``, or a plugin's ``importer``."""

    def command(files: tuple[Path, ...], report_path: Path | None, **kwargs: Any) -> None:
        for file in files:
            report = report_path
            if report is not None and len(files) > 1:
                # One report per file: report.csv -> report-<file name>.csv
                report = report.with_name(f"{report.stem}-{file.stem}{report.suffix}")
            _run(plural, file, report_path=report, **kwargs)

    decorated: Any = with_appcontext(command)
    for decorate in reversed(_options(importer is None)):
        decorated = decorate(decorated)
    decorated = click.argument(
        "files", nargs=-1, required=True, type=click.Path(path_type=Path)
    )(decorated)
    found: click.Command = click.command(plural)(decorated)
    if importer is None:
        extensions = ".csv, .tsv, .txt" + (", .vcf" if plural == "contacts" else "")
        what = f"Import {plural} from FILE... ({extensions})"
    else:
        extensions = ", ".join(
            ".csv, .tsv, .txt" if name == "csv" else f".{name}" for name in importer.formats
        )
        label = f" ({importer.label})" if importer.label else ""
        what = f"Import {plural}{label} from FILE... ({extensions}) with its plugin's importer"
    found.help = (
        f"{what}: rows in batches through the same checks as every write. Several files are "
        "imported one after the other, each as an import job of its own."
    )
    return found


def _run(
    plural: str,
    file: Path,
    *,
    maps: tuple[str, ...],
    delimiter: str | None,
    encoding: str | None,
    dry_run: bool,
    report_path: Path | None,
    as_email: str | None,
    mapping_name: str | None = None,
    match_on: str | None = None,
    on_match: str | None = None,
) -> None:
    crm = get_crm()
    require_current_database(crm)
    if not file.is_file():
        raise click.ClickException(f"{file}: no such file")
    try:
        options = ImportOptions(
            entity=plural,
            format=format_for(file.name, plugin_importer(crm, plural)),
            columns=parse_map(maps) or None,
            delimiter=delimiter,
            encoding=encoding,
            match_on=match_on,
            on_match=on_match,
            dry_run=dry_run,
        )
        with crm.unit_of_work(source="cli") as uow:
            actor = users.get_by_email(uow, as_email) if as_email else None
            uow.actor = actor
            if mapping_name:
                jobs.options_from_mapping(jobs.find_mapping(uow.session, mapping_name), options)
            preflight(crm, file, options)
            job = jobs.create_job(uow, path=file.resolve(), filename=file.name, options=options)
            job_id, total = job.id, job.total_bytes or 0
    except (MappingError, CRMError) as exc:
        raise click.ClickException(str(exc)) from exc
    with click.progressbar(
        length=max(total, 1), label=f"Importing {file.name}", file=sys.stderr
    ) as bar:
        done = [0]

        def progress(summary: ImportSummary) -> None:
            step = min(summary.processed_bytes, total) - done[0]
            if step > 0:
                bar.update(step)
                done[0] += step

        jobs.run_import_job(crm, job_id, progress=progress)
    with crm.session_factory() as session:
        job = session.get(ImportJob, job_id)
        assert job is not None
        if job.status == ImportStatus.FAILED.value:
            raise click.ClickException(f"{file}: {job.error}")
        shown = jobs.rejections(session, job_id, limit=SHOWN_REJECTIONS)
        seconds = (
            (job.finished_at - job.started_at).total_seconds()
            if job.finished_at and job.started_at
            else 0.0
        )
    rate = job.processed_rows / seconds if seconds else 0.0
    prefix = "dry run, nothing saved: would have " if dry_run else ""
    click.echo(
        f"{prefix}created {job.created_count}, updated {job.updated_count}, "
        f"skipped {job.skipped_count}, rejected {job.rejected_count} of "
        f"{job.processed_rows} rows in {seconds:.1f} s ({rate:,.0f} rows/s); import job {job_id}"
    )
    for rejection in shown:
        column = f" {rejection.column}" if rejection.column else ""
        value = f" {rejection.value!r}" if rejection.value else ""
        click.echo(f"  line {rejection.line}{column}{value}: {rejection.reason}")
    if job.rejected_count > len(shown) and report_path is None:
        click.echo("  ... see every rejected row with --report FILE.csv", err=True)
    if report_path is not None:
        count = jobs.write_report(crm, job_id, report_path)
        click.echo(f"report: {count} reasons in {report_path}", err=True)


for _plural in ("customers", "contacts", "interactions"):
    import_group.add_command(_import_command(_plural))


@import_group.command("mappings")
def list_mappings() -> None:
    """List the saved mappings (use one with --mapping NAME)."""
    crm = get_crm()
    require_current_database(crm)
    with crm.session_factory() as session:
        found = list(session.scalars(select(ImportMapping).order_by(ImportMapping.name)))
    if not found:
        click.echo("no saved mappings: create one with `crm import save-mapping`")
        return
    print_table(
        ["name", "entity", "columns"],
        [
            [
                item.name,
                item.entity,
                ", ".join(f"{h}={t}" for h, t in item.columns.items()) or "-",
            ]
            for item in found
        ],
    )


@import_group.command("save-mapping")
@click.argument("name")
@click.option(
    "--entity",
    required=True,
    type=click.Choice(["customers", "contacts", "interactions"]),
    help="What the mapped files hold.",
)
@click.option(
    "--map", "maps", multiple=True, required=True, metavar="HEADER=FIELD",
    help="Fill FIELD from column HEADER; HEADER= ignores the column (repeat).",
)
@click.option("--delimiter", default=None, help="Delimiter of such files.")
@click.option("--encoding", default=None, help="Encoding of such files.")
@click.option("--match-on", type=click.Choice(MATCH_ON), default=None)
@click.option("--on-match", type=click.Choice(ON_MATCH), default=None)
def save_mapping_command(
    name: str,
    entity: str,
    maps: tuple[str, ...],
    delimiter: str | None,
    encoding: str | None,
    match_on: str | None,
    on_match: str | None,
) -> None:
    """Save (or replace) mapping NAME: headers to fields, and reading options."""
    crm = get_crm()
    require_current_database(crm)
    saved = {
        key: value
        for key, value in {
            "delimiter": delimiter,
            "encoding": encoding,
            "match_on": match_on,
            "on_match": on_match,
        }.items()
        if value is not None
    }
    try:
        with crm.unit_of_work(source="cli") as uow:
            mapping = jobs.save_mapping(uow, name, entity, parse_map(maps), saved)
            mapping_id = mapping.id
    except (MappingError, CRMError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"saved mapping {name!r} (id {mapping_id}) for {entity}")
