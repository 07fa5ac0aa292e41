"""Saved views: each user's named filters of the UI's lists.

Revision ID: 0008_core
Revises: 0007_core
Create Date: 2026-12-02 07:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_core.db

revision: str = "0008_core"
down_revision: str | Sequence[str] | None = "0007_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "saved_view",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("query", sa.String(length=1000), nullable=False),
        sa.Column("created_at", crm_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crm_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_saved_view_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_view")),
        sa.UniqueConstraint(
            "user_id", "entity", "name", name=op.f("uq_saved_view_user_id_entity_name")
        ),
    )


def downgrade() -> None:
    op.drop_table("saved_view")
