"""The UI language each user picked (``NULL``: the browser's preference).

Revision ID: 0010_core
Revises: 0009_core
Create Date: 2026-12-02 10:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_core"
down_revision: str | Sequence[str] | None = "0009_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("user", sa.Column("language", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("user", "language")
