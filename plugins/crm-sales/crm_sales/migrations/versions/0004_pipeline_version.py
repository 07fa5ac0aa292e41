"""Pipelines get a version, so two admins editing one pipeline cannot overwrite each other.

Revision ID: sales_0004
Revises: sales_0003
Create Date: 2026-12-02 14:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'sales_0004'
down_revision: str | Sequence[str] | None = 'sales_0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


#: The hand-made index of the table (sales_0003): SQLite's batch mode copies the table
#: without it (it cannot reflect an expression index), so it is made again afterwards.
NAME_INDEX = 'uq_sales_pipeline_name_lower'


def upgrade() -> None:
    # A plain ADD COLUMN (both databases take one with a default): no table copy.
    op.add_column('sales_pipeline', sa.Column('version', sa.Integer(), nullable=False,
                                              server_default='1'))


def downgrade() -> None:
    op.drop_index(NAME_INDEX, table_name='sales_pipeline')
    with op.batch_alter_table('sales_pipeline', schema=None) as batch_op:
        batch_op.drop_column('version')
    op.create_index(NAME_INDEX, 'sales_pipeline', [sa.text('lower(name)')], unique=True)
