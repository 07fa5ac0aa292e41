"""Plugins' importers that core runs: what their ``run`` gets, and how core calls it.

An :class:`~crm_core.extensions.Importer` with ``run`` is imported like core's
entities: ``crm import <name> FILE``, ``POST /api/v1/imports`` with ``entity=<name>``
and the ``/imports`` page create an :class:`~crm_core.models.ImportJob` (checking the
importer's ``permission``), and :func:`run_importer` calls ``run(context)`` with an
:class:`ImportContext`. The importer reads ``context.stream`` with the options of the
context, writes its rows in batches (rolled back in a dry run), and hands each batch's
rejected rows and the running counts to :meth:`ImportContext.report`; core writes them
to the job as it does for its own imports (:func:`~crm_core.imports.summary.report_batch`).
``run`` returns the :class:`~crm_core.imports.summary.ImportSummary`; it raises
:class:`~crm_core.imports.reading.ReadError` for a file it cannot read and
:class:`~crm_core.imports.mapping.MappingError` for options or columns it cannot use,
which fail the job with their message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from crm_core.errors import CRMError
from crm_core.extensions import Importer
from crm_core.imports.summary import (
    ImportSummary,
    Progress,
    Rejection,
    record_columns,
    report_batch,
)

if TYPE_CHECKING:
    from crm_core.imports.runner import ImportOptions
    from crm_core.runtime import CRM


@dataclass
class ImportContext:
    """What a plugin's importer gets to import one file, and where it reports to."""

    crm: CRM
    stream: BinaryIO
    """The file, opened for reading bytes."""
    entity: str
    """The importer's name (``opportunities``): the :class:`ImportSummary`'s ``entity``."""
    format: str = "csv"
    """Which of the importer's ``formats`` the file is (by its extension)."""
    actor: Any = None
    """Who imports: a user (their permissions and visibility apply), ``None`` the system."""
    dry_run: bool = False
    """Write nothing: roll every batch back, and report what a real run would."""
    encoding: str | None = None
    """The file's encoding as given; ``None``: detect it."""
    delimiter: str | None = None
    """The CSV delimiter as given (one character); ``None``: detect it."""
    columns: Mapping[str, str] | None = None
    """Explicit header -> field mapping (``""`` ignores a column); others automatic."""
    batch_size: int = 1000
    """Rows per transaction (the option given, else the ``bulk_batch_size`` setting)."""
    job_id: int | None = None
    """The :class:`~crm_core.models.ImportJob` being run, if any."""
    progress: Progress | None = None

    def summary(self) -> ImportSummary:
        """A new, empty summary of this import, to fill and pass to :meth:`report`."""
        return ImportSummary(self.entity, self.dry_run)

    def report(self, rejections: Sequence[Rejection], summary: ImportSummary) -> None:
        """Hand core a batch's rejected rows (by line and column) and the running counts
        of ``summary`` (created, updated, skipped, rejected, processed rows and bytes).

        Call it once after each batch. Core keeps the first rejections in
        ``summary.rejections`` (all of them without a job: do not add them yourself),
        writes them and the counts to the job, and moves its progress.
        """
        report_batch(self.crm, self.job_id, rejections, summary, self.progress)

    def record_columns(self, columns: Mapping[str, str]) -> None:
        """Tell core which field each header of the file fills (``""``: ignored), for the
        job's ``columns_used``; call it once the header is read, before the first batch."""
        record_columns(self.crm, self.job_id, columns)


def run_importer(
    crm: CRM,
    importer: Importer,
    stream: BinaryIO,
    options: ImportOptions,
    *,
    actor: Any = None,
    job_id: int | None = None,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import ``stream`` with a plugin's ``importer`` as ``options`` (checked) say.

    Core writes the final counts of the summary ``run`` returns to the job.
    """
    if importer.run is None:
        raise CRMError(f"the importer {importer.name!r} cannot be run: it has no run")
    context = ImportContext(
        crm=crm,
        stream=stream,
        entity=importer.name,
        format=options.format,
        actor=actor,
        dry_run=options.dry_run,
        encoding=options.encoding,
        delimiter=options.delimiter,
        columns=dict(options.columns or {}),
        batch_size=options.batch_size or crm.settings.bulk_batch_size,
        job_id=job_id,
        progress=progress,
    )
    started = time.perf_counter()
    summary = importer.run(context)
    if not isinstance(summary, ImportSummary):
        raise CRMError(
            f"the importer {importer.name!r} returned {type(summary).__name__}, "
            "not an ImportSummary"
        )
    summary.seconds = summary.seconds or time.perf_counter() - started
    context.report([], summary)
    return summary
