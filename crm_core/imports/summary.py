"""What an import did, and how it gets to its job: counts, rejected rows, progress.

Core's :class:`~crm_core.imports.runner.ImportRunner` and plugins' importers (through
:class:`~crm_core.imports.context.ImportContext`) both hand each batch's rejected rows
and the running counts to :func:`report_batch`, which writes them to the
:class:`~crm_core.models.ImportJob` in a short transaction of its own, so pollers see
the job move.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, update

from crm_core.db import utcnow
from crm_core.models import ImportJob, ImportRejection

if TYPE_CHECKING:
    from crm_core.runtime import CRM

#: Rejections kept in memory for the summary (the job's table has them all).
SUMMARY_REJECTIONS = 20
#: Longest value stored in a rejection.
MAX_VALUE = 1000


@dataclass
class Rejection:
    """One reason one row was refused."""

    line: int
    column: str
    value: str | None
    reason: str


def message_texts(value: Any, prefix: str = "") -> Iterator[str]:
    """Every message in a marshmallow message structure (a :class:`ValidationError`'s
    ``messages``), nested keys as ``key: message``: what a rejection's ``reason`` says."""
    if isinstance(value, str):
        yield f"{prefix}{value}"
    elif isinstance(value, Mapping):
        for key, nested in value.items():
            yield from message_texts(nested, f"{prefix}{key}: ")
    elif isinstance(value, Iterable):
        for nested in value:
            yield from message_texts(nested, prefix)
    else:
        yield f"{prefix}{value}"


@dataclass
class ImportSummary:
    """What an import did."""

    entity: str
    dry_run: bool
    created: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: int = 0
    processed_rows: int = 0
    processed_bytes: int = 0
    seconds: float = 0.0
    encoding: str = ""
    delimiter: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    """The first :data:`SUMMARY_REJECTIONS` (all of them when there is no job)."""

    @property
    def rows_per_second(self) -> float:
        """Rows processed per second."""
        return self.processed_rows / self.seconds if self.seconds else 0.0


Progress = Callable[[ImportSummary], None]


def report_batch(
    crm: CRM,
    job_id: int | None,
    rejections: Sequence[Rejection],
    summary: ImportSummary,
    progress: Progress | None = None,
) -> None:
    """Keep the first ``rejections`` in ``summary`` (all without a job), write them and the
    running counts of ``summary`` to job ``job_id``, and tell ``progress``."""
    room = SUMMARY_REJECTIONS - len(summary.rejections)
    if job_id is None:
        summary.rejections.extend(rejections)
    elif room > 0:
        summary.rejections.extend(rejections[:room])
    if job_id is not None:
        with crm.unit_of_work(actor=None, source="import") as uow:
            if rejections:
                uow.session.execute(
                    insert(ImportRejection),
                    [
                        {
                            "job_id": job_id,
                            "line": r.line,
                            "column": r.column[:300],
                            "value": r.value[:MAX_VALUE] if r.value is not None else None,
                            "reason": r.reason,
                        }
                        for r in rejections
                    ],
                )
            uow.session.execute(
                update(ImportJob)
                .where(ImportJob.id == job_id)
                .values(
                    processed_rows=summary.processed_rows,
                    processed_bytes=summary.processed_bytes,
                    created_count=summary.created,
                    updated_count=summary.updated,
                    skipped_count=summary.skipped,
                    rejected_count=summary.rejected,
                    progressed_at=utcnow(),
                )
            )
    if progress is not None:
        progress(summary)


def record_columns(crm: CRM, job_id: int | None, columns: Mapping[str, str]) -> None:
    """Write the header -> target mapping a file resolved to job ``job_id`` (``columns_used``;
    ``""`` for an ignored column)."""
    if job_id is None:
        return
    with crm.unit_of_work(actor=None, source="import") as uow:
        uow.session.execute(
            update(ImportJob).where(ImportJob.id == job_id).values(columns_used=dict(columns))
        )
