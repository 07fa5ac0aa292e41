"""Import reruns: the mapping a job used, and how long it keeps a dry run's file.

``import_job.columns_used`` holds the header -> field mapping the run resolved
(``json`` rather than ``jsonb`` on PostgreSQL, so the file's column order stays);
``import_job.file_expires_at`` says until when a dry run's file is kept for running it
again. Both are added with ``ADD COLUMN`` (nullable, no table copy).

Revision ID: 0009_core
Revises: 0008_core
Create Date: 2026-12-04 09:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_core.db

revision: str = "0009_core"
down_revision: str | Sequence[str] | None = "0008_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("import_job", sa.Column("columns_used", sa.JSON(), nullable=True))
    op.add_column(
        "import_job",
        sa.Column("file_expires_at", crm_core.db.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), as 0005 does.
    op.drop_column("import_job", "file_expires_at")
    op.drop_column("import_job", "columns_used")
