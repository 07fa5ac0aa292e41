"""A contact's emails and phone numbers indexed in their order.

``contact_email`` and ``contact_phone`` are read per contact (or per range of contacts,
by exports) ordered by ``(contact_id, position)``: an index on ``contact_id`` alone
left a sort of every batch to the database. The composite index replaces it (its
leading column serves the foreign key as before).

Revision ID: 0007_core
Revises: 0006_core
Create Date: 2026-12-02 07:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_core"
down_revision: str | Sequence[str] | None = "0006_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("contact_email", "contact_phone")


def upgrade() -> None:
    for table in _TABLES:
        op.create_index(f"ix_{table}_contact_id_position", table, ["contact_id", "position"])
        op.drop_index(f"ix_{table}_contact_id", table_name=table)


def downgrade() -> None:
    for table in _TABLES:
        op.create_index(f"ix_{table}_contact_id", table, ["contact_id"])
        op.drop_index(f"ix_{table}_contact_id_position", table_name=table)
