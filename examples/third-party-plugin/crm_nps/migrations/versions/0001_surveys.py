"""nps_survey: the first table of the branch crm_nps

Revision ID: nps_0001
Revises:
Create Date: 2026-12-02 14:47:39
"""

from collections.abc import Sequence

import crm_core.db
import sqlalchemy as sa
from alembic import op

revision: str = "nps_0001"
down_revision: str | Sequence[str] | None = None
# The first revision of the plugin's own branch, named after the plugin.
branch_labels: str | Sequence[str] | None = ("crm_nps",)
# The oldest core revision with what this table references (customer, interaction): not
# core's head, so core's state stays knowable while the plugin is disabled.
depends_on: str | Sequence[str] | None = "0001_core"


def upgrade() -> None:
    op.create_table(
        "nps_survey",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interaction_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("sent_at", crm_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", crm_core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("created_at", crm_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crm_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"],
            name=op.f("fk_nps_survey_customer_id_customer"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"], ["interaction.id"],
            name=op.f("fk_nps_survey_interaction_id_interaction"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nps_survey")),
        sa.UniqueConstraint("interaction_id", name=op.f("uq_nps_survey_interaction_id")),
        sa.UniqueConstraint("token", name=op.f("uq_nps_survey_token")),
    )
    with op.batch_alter_table("nps_survey", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_nps_survey_customer_id"), ["customer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("nps_survey", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nps_survey_customer_id"))
    op.drop_table("nps_survey")
