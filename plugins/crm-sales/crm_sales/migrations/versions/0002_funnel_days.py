"""The funnel's figures summed per day, filled from the deals there are.

``sales_funnel_stage_day``, ``sales_funnel_outcome_day`` and ``sales_funnel_deal`` (see
:mod:`crm_sales.services.funnel_store`), and an index on deals by pipeline and creation
time for the days at the edges of a report's range.

Revision ID: sales_0002
Revises: sales_0001
Create Date: 2026-12-02 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'sales_0002'
down_revision: str | Sequence[str] | None = 'sales_0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('sales_funnel_outcome_day',
    sa.Column('pipeline_id', sa.Integer(), nullable=False),
    sa.Column('dimension', sa.String(length=16), nullable=False),
    sa.Column('period', sa.String(length=5), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('value', sa.String(length=120), nullable=False),
    sa.Column('owner_key', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('deals', sa.Integer(), nullable=False),
    sa.Column('won_cents', sa.BigInteger(), nullable=False),
    sa.Column('cycle_seconds', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['pipeline_id'], ['sales_pipeline.id'], name=op.f('fk_sales_funnel_outcome_day_pipeline_id_sales_pipeline'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pipeline_id', 'dimension', 'period', 'day', 'value', 'owner_key', 'currency', 'status', name=op.f('pk_sales_funnel_outcome_day')),
    sqlite_with_rowid=False
    )
    op.create_table('sales_funnel_stage_day',
    sa.Column('pipeline_id', sa.Integer(), nullable=False),
    sa.Column('dimension', sa.String(length=16), nullable=False),
    sa.Column('period', sa.String(length=5), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('value', sa.String(length=120), nullable=False),
    sa.Column('owner_key', sa.Integer(), nullable=False),
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('entered', sa.Integer(), nullable=False),
    sa.Column('left_stays', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['pipeline_id'], ['sales_pipeline.id'], name=op.f('fk_sales_funnel_stage_day_pipeline_id_sales_pipeline'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pipeline_id', 'dimension', 'period', 'day', 'value', 'owner_key', 'stage_id', name=op.f('pk_sales_funnel_stage_day')),
    sqlite_with_rowid=False
    )
    op.create_table('sales_funnel_deal',
    sa.Column('opportunity_id', sa.Integer(), nullable=False),
    sa.Column('segment', sa.String(length=120), nullable=False),
    sa.Column('region', sa.String(length=2), nullable=False),
    sa.ForeignKeyConstraint(['opportunity_id'], ['sales_opportunity.id'], name=op.f('fk_sales_funnel_deal_opportunity_id_sales_opportunity'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('opportunity_id', name=op.f('pk_sales_funnel_deal'))
    )
    with op.batch_alter_table('sales_opportunity', schema=None) as batch_op:
        batch_op.create_index('ix_sales_opportunity_pipeline_created', ['pipeline_id', 'created_at'], unique=False)

    # The sums of the deals already there. The store's own queries, on purpose: a later
    # change of how cells are summed ships with a migration that rebuilds them again.
    from crm_sales.services import funnel_store

    funnel_store.rebuild(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table('sales_opportunity', schema=None) as batch_op:
        batch_op.drop_index('ix_sales_opportunity_pipeline_created')

    op.drop_table('sales_funnel_deal')
    op.drop_table('sales_funnel_stage_day')
    op.drop_table('sales_funnel_outcome_day')
