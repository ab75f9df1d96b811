"""api quota

Revision ID: 0007
Revises: 0006

The Soundcharts API quota (``store.quota``): ``chart_sync_quota_reading``, what the API said was left
(bounded by its writer), and ``chart_sync_api_calls``, the calls spent per chart (NULL: no chart) and
UTC day, one row per (day, chart) through a unique index on ``coalesce(chart_id, 0)``.
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'


def upgrade() -> None:
    op.create_table('chart_sync_quota_reading',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('remaining', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('chart_sync_quota_reading', schema=None) as batch_op:
        batch_op.create_index('ix_chart_sync_quota_reading_seen_at', ['seen_at'], unique=False)
    op.create_table('chart_sync_api_calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('chart_id', sa.Integer(), nullable=True),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('uq_chart_sync_api_calls_day_chart', 'chart_sync_api_calls',
                    ['day', sa.text('coalesce(chart_id, 0)')], unique=True)


def downgrade() -> None:
    op.drop_index('uq_chart_sync_api_calls_day_chart', table_name='chart_sync_api_calls')
    op.drop_table('chart_sync_api_calls')
    with op.batch_alter_table('chart_sync_quota_reading', schema=None) as batch_op:
        batch_op.drop_index('ix_chart_sync_quota_reading_seen_at')
    op.drop_table('chart_sync_quota_reading')
