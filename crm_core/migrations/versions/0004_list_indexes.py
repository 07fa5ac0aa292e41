"""Indexes that serve the default order of the contact and interaction lists.

``GET /contacts`` lists active contacts by ``(last_name, id)`` and ``GET /interactions``
by ``(occurred_at, id)`` newest first: with ``archived`` leading, each page (the first
and a deep one after a cursor) is one range of the index, as for customers.

Revision ID: 0004_core
Revises: 0003_core
Create Date: 2026-11-24 00:55:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_core"
down_revision: str | Sequence[str] | None = "0003_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_contact_archived_last_name", "contact", ["archived", "last_name", "id"]
    )
    op.create_index(
        "ix_interaction_archived_occurred_at", "interaction", ["archived", "occurred_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_interaction_archived_occurred_at", table_name="interaction")
    op.drop_index("ix_contact_archived_last_name", table_name="contact")
