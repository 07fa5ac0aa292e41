"""Import jobs and mappings, event deliveries and webhooks, external ids.

``import_job`` / ``import_rejection`` / ``import_mapping`` hold imports and their
per-row reports; ``event_delivery`` / ``delivery_attempt`` the delivery of each outbox
event to each consumer (the idempotency key is ``(event_id, consumer)``); ``webhook``
the subscriptions. ``customer.external_id`` and ``contact.external_id`` (unique) are
what imports match on besides email. They are added with ``ADD COLUMN`` and a unique
index rather than a batch (table copying) operation, which would drop the search
triggers of ``0003`` on SQLite.

Revision ID: 0005_core
Revises: 0004_core
Create Date: 2026-11-24 02:17:07.781217
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_core.db

revision: str = '0005_core'
down_revision: str | Sequence[str] | None = '0004_core'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('import_job',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entity', sa.String(length=80), nullable=False),
    sa.Column('format', sa.String(length=20), nullable=False),
    sa.Column('filename', sa.String(length=500), nullable=False),
    sa.Column('path', sa.String(length=1000), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('options', crm_core.db.JSONDocument(), nullable=False),
    sa.Column('total_bytes', sa.Integer(), nullable=True),
    sa.Column('processed_bytes', sa.Integer(), nullable=False),
    sa.Column('processed_rows', sa.Integer(), nullable=False),
    sa.Column('created_count', sa.Integer(), nullable=False),
    sa.Column('updated_count', sa.Integer(), nullable=False),
    sa.Column('skipped_count', sa.Integer(), nullable=False),
    sa.Column('rejected_count', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', crm_core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', crm_core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('progressed_at', crm_core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', crm_core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['user.id'], name=op.f('fk_import_job_created_by_id_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_job'))
    )
    with op.batch_alter_table('import_job', schema=None) as batch_op:
        batch_op.create_index('ix_import_job_created_by_id_id', ['created_by_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_import_job_status'), ['status'], unique=False)

    op.create_table('import_mapping',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('entity', sa.String(length=80), nullable=False),
    sa.Column('columns', crm_core.db.JSONDocument(), nullable=False),
    sa.Column('options', crm_core.db.JSONDocument(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', crm_core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', crm_core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['user.id'], name=op.f('fk_import_mapping_created_by_id_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_mapping')),
    sa.UniqueConstraint('name', name=op.f('uq_import_mapping_name'))
    )
    op.create_table('webhook',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('event_types', crm_core.db.JSONDocument(), nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('failure_streak', sa.Integer(), nullable=False),
    sa.Column('last_success_at', crm_core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_failure_at', crm_core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('disabled_at', crm_core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', crm_core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', crm_core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['user.id'], name=op.f('fk_webhook_created_by_id_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook'))
    )
    op.create_table('event_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('consumer', sa.String(length=120), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', crm_core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lease_until', crm_core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', crm_core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', crm_core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['outbox_event.id'], name=op.f('fk_event_delivery_event_id_outbox_event'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_delivery')),
    sa.UniqueConstraint('event_id', 'consumer', name=op.f('uq_event_delivery_event_id_consumer'))
    )
    with op.batch_alter_table('event_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_event_delivery_consumer_id', ['consumer', 'id'], unique=False)
        batch_op.create_index('ix_event_delivery_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)

    op.create_table('import_rejection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('column', sa.String(length=300), nullable=False),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['import_job.id'], name=op.f('fk_import_rejection_job_id_import_job'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_rejection'))
    )
    with op.batch_alter_table('import_rejection', schema=None) as batch_op:
        batch_op.create_index('ix_import_rejection_job_id_line', ['job_id', 'line', 'id'], unique=False)

    op.create_table('delivery_attempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('attempted_at', crm_core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('duration_ms', sa.Double(), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['delivery_id'], ['event_delivery.id'], name=op.f('fk_delivery_attempt_delivery_id_event_delivery'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_attempt'))
    )
    with op.batch_alter_table('delivery_attempt', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_attempt_delivery_id_id', ['delivery_id', 'id'], unique=False)

    # The admin lists of events (newest first, by record) and of deliveries (by status).
    op.create_index("ix_outbox_event_occurred_at_id", "outbox_event", ["occurred_at", "id"])
    op.create_index(
        "ix_outbox_event_entity_entity_id_occurred_at",
        "outbox_event",
        ["entity", "entity_id", "occurred_at"],
    )
    op.create_index("ix_event_delivery_status_id", "event_delivery", ["status", "id"])

    for table in ("customer", "contact"):
        op.add_column(table, sa.Column("external_id", sa.String(length=200), nullable=True))
        op.create_index(f"ix_{table}_external_id", table, ["external_id"], unique=True)



def downgrade() -> None:
    op.drop_index("ix_event_delivery_status_id", table_name="event_delivery")
    op.drop_index("ix_outbox_event_entity_entity_id_occurred_at", table_name="outbox_event")
    op.drop_index("ix_outbox_event_occurred_at_id", table_name="outbox_event")
    for table in ("contact", "customer"):
        op.drop_index(f"ix_{table}_external_id", table_name=table)
        # ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy would break the
        # search triggers of 0003, which refer to these tables.
        op.drop_column(table, "external_id")

    with op.batch_alter_table('delivery_attempt', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_attempt_delivery_id_id')

    op.drop_table('delivery_attempt')
    with op.batch_alter_table('import_rejection', schema=None) as batch_op:
        batch_op.drop_index('ix_import_rejection_job_id_line')

    op.drop_table('import_rejection')
    with op.batch_alter_table('event_delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_event_delivery_status_next_attempt_at')
        batch_op.drop_index('ix_event_delivery_consumer_id')

    op.drop_table('event_delivery')
    op.drop_table('webhook')
    op.drop_table('import_mapping')
    with op.batch_alter_table('import_job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_import_job_status'))
        batch_op.drop_index('ix_import_job_created_by_id_id')

    op.drop_table('import_job')
