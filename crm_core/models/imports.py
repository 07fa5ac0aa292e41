"""Import jobs, their rejected rows, and saved header-to-field mappings."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Base, TimestampMixin, utcnow


class ImportStatus(enum.StrEnum):
    """Where an import job stands."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ImportMapping(TimestampMixin, Base):
    """A saved header-to-field mapping (and reading options) to reuse for similar files."""

    __tablename__ = "import_mapping"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    entity: Mapped[str] = mapped_column(String(80))
    columns: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """File header -> field name (``""`` to ignore a column)."""
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Reading and matching options: delimiter, encoding, match_on, on_match."""
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))


class ImportJob(Base):
    """One import of one file: its options, progress and counts."""

    __tablename__ = "import_job"
    __table_args__ = (Index("ix_import_job_created_by_id_id", "created_by_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(80))
    format: Mapped[str] = mapped_column(String(20))
    filename: Mapped[str] = mapped_column(String(500))
    path: Mapped[str | None] = mapped_column(String(1000))
    """Where the uploaded file is kept until the job has run (a dry run's: until
    ``file_expires_at``, or until another job runs it again)."""
    status: Mapped[str] = mapped_column(String(20), default=ImportStatus.QUEUED.value, index=True)
    dry_run: Mapped[bool] = mapped_column(default=False)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    columns_used: Mapped[dict[str, str] | None] = mapped_column(JSON)
    """File header -> target field (``""``: ignored) as the run resolved them, in the
    file's order (``json``, not ``jsonb``, on PostgreSQL to keep it); ``None`` for a
    vCard file or before the header was read."""
    file_expires_at: Mapped[dt.datetime | None]
    """Until when the job keeps the file of a dry run for running it again (then the
    ``crm_core.prune_import_files`` job deletes it); ``None`` when it keeps no file."""
    total_bytes: Mapped[int | None]
    processed_bytes: Mapped[int] = mapped_column(default=0)
    processed_rows: Mapped[int] = mapped_column(default=0)
    created_count: Mapped[int] = mapped_column(default=0)
    updated_count: Mapped[int] = mapped_column(default=0)
    skipped_count: Mapped[int] = mapped_column(default=0)
    rejected_count: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    """Why the whole job failed (an unreadable file...), as opposed to rejected rows."""
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    progressed_at: Mapped[dt.datetime | None]
    """When the running job last committed a batch: a job that stops progressing for
    long was abandoned by a worker that died (see ``imports.jobs.fail_abandoned``)."""
    finished_at: Mapped[dt.datetime | None]


class ImportRejection(Base):
    """One reason one row of an import was refused (a row may have several)."""

    __tablename__ = "import_rejection"
    __table_args__ = (Index("ix_import_rejection_job_id_line", "job_id", "line", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("import_job.id", ondelete="CASCADE"))
    line: Mapped[int]
    """The line of the file the row starts on (1 is the header of a CSV file)."""
    column: Mapped[str] = mapped_column(String(300), default="")
    """The file's column (CSV header, vCard property) the reason is about; ``""`` the row."""
    value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
