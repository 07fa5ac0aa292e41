"""Product codes, pipeline, price list and lost reason names unique in any case.

The services refuse a name another record has in any case (``Pro`` and ``PRO``), but two
transactions could still both pass that check and write; these unique indexes on the
lower-cased values close that race (the services turn the violation into the same
message). Expression indexes are left out of the models: Alembic does not compare them.

Revision ID: sales_0003
Revises: sales_0002
Create Date: 2026-12-02 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'sales_0003'
down_revision: str | Sequence[str] | None = 'sales_0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (index, table, column)
INDEXES = (
    ('uq_sales_product_code_lower', 'sales_product', 'code'),
    ('uq_sales_pipeline_name_lower', 'sales_pipeline', 'name'),
    ('uq_sales_price_list_name_lower', 'sales_price_list', 'name'),
    ('uq_sales_lost_reason_name_lower', 'sales_lost_reason', 'name'),
)


def upgrade() -> None:
    for name, table, column in INDEXES:
        op.create_index(name, table, [sa.text(f'lower({column})')], unique=True)


def downgrade() -> None:
    for name, table, _column in INDEXES:
        op.drop_index(name, table_name=table)
