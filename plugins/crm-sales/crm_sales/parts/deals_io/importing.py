"""The importer ``opportunities`` core runs: each row a deal, through the deals service."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import DBAPIError

from crm_core import CRMError, PermissionDenied, UnitOfWork, ValidationError
from crm_core.authz import require
from crm_core.extensions import Importer
from crm_core.imports import (
    ImportContext,
    ImportOptions,
    ImportSummary,
    ReadError,
    Rejection,
    message_texts,
    run_import,
)
from crm_sales.parts.deals_io.export import NAME
from crm_sales.parts.deals_io.reading import FIELDS, REFERENCES, DealFile, FileRow, read_deals
from crm_sales.parts.deals_io.references import References
from crm_sales.services import opportunities


def importers() -> list[Importer]:
    """The ``opportunities`` importer (CSV) that core runs: ``crm import opportunities``,
    ``POST /api/v1/imports`` and the ``/imports`` page, for holders of ``sales.deal.edit``."""
    return [
        Importer(
            NAME, opportunities.ENTITY, ("csv",), read_deals, run=run,
            permission=opportunities.EDIT, label=_l("Deals"), targets=(*FIELDS, *REFERENCES),
        )
    ]


class _DryRun(Exception):
    """Raised inside a dry run's unit of work to roll the batch back."""


def run(context: ImportContext) -> ImportSummary:
    """Create a deal from each row of the context's CSV file as ``context.actor``.

    What core calls for an import of ``opportunities``. Needs ``sales.deal.edit``
    (:class:`PermissionDenied`); raises :class:`ReadError` when the file cannot be read
    and :class:`MappingError` when its columns lack what a deal needs, before anything is
    written. Refused rows never raise: each batch's are handed to ``context.report``
    with the counts. Rows are written ``context.batch_size`` at a time, one transaction
    per batch (rolled back in a dry run).
    """
    require(context.actor, opportunities.EDIT)
    started = time.perf_counter()
    source = DealFile(context.stream, encoding=context.encoding, delimiter=context.delimiter,
                      columns=context.columns)
    summary = context.summary()
    summary.encoding, summary.delimiter = source.encoding, source.delimiter
    summary.columns, summary.ignored = source.columns, source.ignored
    context.record_columns(source.columns_used)
    batch: list[FileRow] = []
    try:
        for row in source.rows():
            batch.append(row)
            if len(batch) >= context.batch_size:
                _batch(context, source, batch, summary, started)
                batch = []
    except ReadError as exc:
        if batch:
            _batch(context, source, batch, summary, started)
        saved = "nothing was saved" if context.dry_run else "rows before it were imported"
        raise ReadError(f"{exc} ({saved})") from exc
    finally:
        source.close()
    if batch:
        _batch(context, source, batch, summary, started)
    summary.seconds = time.perf_counter() - started
    return summary


def import_deals(
    crm: Any,
    file: str | Path | BinaryIO,
    *,
    actor: Any = None,
    dry_run: bool = False,
    encoding: str | None = None,
    delimiter: str | None = None,
    columns: Mapping[str, str] | None = None,
    batch_size: int | None = None,
) -> ImportSummary:
    """Import the deals of the CSV ``file`` (a path or a binary stream) without a job:
    core's :func:`~crm_core.imports.run_import` of ``opportunities``, for Python callers.

    Every rejection is in the summary; errors are :func:`run`'s.
    """
    options = ImportOptions(
        NAME, columns=dict(columns) if columns else None, delimiter=delimiter,
        encoding=encoding, dry_run=dry_run, batch_size=batch_size,
    )
    return run_import(crm, file, options, actor=actor)


def _batch(
    context: ImportContext,
    source: DealFile,
    rows: list[FileRow],
    summary: ImportSummary,
    started: float,
) -> None:
    """Write one batch in a unit of work of its own (rolled back in a dry run), then report
    its rejected rows and the counts to core."""
    created = 0
    rejections: list[Rejection] = []
    try:
        with context.crm.unit_of_work(actor=context.actor, source="import") as uow:
            resolver = References(uow.session, context.actor, rows)
            for row in rows:
                problems = _create(uow, source, resolver, row)
                if problems:
                    rejections.extend(problems)
                else:
                    created += 1
            if context.dry_run:
                raise _DryRun
    except _DryRun:
        pass
    summary.processed_rows += len(rows)
    summary.created += created
    summary.rejected += len(rows) - created
    summary.processed_bytes = source.bytes_read
    summary.seconds = time.perf_counter() - started
    context.report(rejections, summary)


def _create(
    uow: UnitOfWork, source: DealFile, resolver: References, row: FileRow
) -> list[Rejection]:
    """Create the deal of ``row`` in a savepoint; the reasons it was refused, if it was."""
    if row.undecodable:
        return [
            Rejection(row.line, column, None,
                      f"Holds bytes that are not valid {source.encoding}: check the encoding.")
            for column in row.undecodable
        ]
    data, problems, columns = resolver.data(row)
    if problems:
        return [Rejection(row.line, source.column_of(target), row.values.get(target), reason)
                for target, reason in problems]
    callbacks = len(uow.committed_callbacks)
    try:
        with uow.session.begin_nested():
            opportunities.create(uow, data)
    except ValidationError as exc:
        del uow.committed_callbacks[callbacks:]
        found = []
        for field_name, messages in exc.messages.items():
            target = columns.get(str(field_name), str(field_name))
            column = source.column_of(target)
            value = row.values.get(target) if column else None
            found.extend(Rejection(row.line, column, value, text)
                         for text in message_texts(messages))
        return found or [Rejection(row.line, "", None, "Refused.")]
    except PermissionDenied:
        raise
    except (CRMError, DBAPIError) as exc:
        del uow.committed_callbacks[callbacks:]
        reason = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)
        return [Rejection(row.line, "", None, f"Not imported: {reason}")]
    return []

