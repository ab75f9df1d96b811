"""live gaps and coverage; the heal queue

Revision ID: 0005
Revises: 0004

Gaps and coverage are computed when they are shown (``store.gaps.runs_query``), so the tables the
gap audit used to fill (``chart_sync_gap``, ``chart_sync_coverage``) go. ``chart_sync_heal`` holds
the gap ranges a heal backfills one after the other: Airflow allows one active backfill per DAG,
so the first range is ``running`` (its backfill id) and the others wait ``queued`` until the one
before completes.
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'


def upgrade() -> None:
    op.create_table('chart_sync_heal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('chart_id', sa.Integer(), nullable=False),
    sa.Column('start_period', sa.Date(), nullable=False),
    sa.Column('end_period', sa.Date(), nullable=False),
    sa.Column('period_count', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('backfill_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=250), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['chart_id'], ['chart.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('chart_sync_heal', schema=None) as batch_op:
        batch_op.create_index('ix_chart_sync_heal_chart_status', ['chart_id', 'status'], unique=False)
    with op.batch_alter_table('chart_sync_gap', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chart_sync_gap_chart_id'))
    op.drop_table('chart_sync_gap')
    op.drop_table('chart_sync_coverage')


def downgrade() -> None:
    op.create_table('chart_sync_coverage',
    sa.Column('chart_id', sa.Integer(), nullable=False),
    sa.Column('window_start', sa.Date(), nullable=False),
    sa.Column('window_end', sa.Date(), nullable=False),
    sa.Column('expected_periods', sa.Integer(), nullable=False),
    sa.Column('stored_periods', sa.Integer(), nullable=False),
    sa.Column('coverage_percent', sa.Float(), nullable=False),
    sa.Column('calendar_only', sa.JSON(), nullable=True),
    sa.Column('api_only', sa.JSON(), nullable=True),
    sa.Column('audited_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['chart_id'], ['chart.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('chart_id')
    )
    op.create_table('chart_sync_gap',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('chart_id', sa.Integer(), nullable=False),
    sa.Column('start_period', sa.Date(), nullable=False),
    sa.Column('end_period', sa.Date(), nullable=False),
    sa.Column('period_count', sa.Integer(), nullable=False),
    sa.Column('detected_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['chart_id'], ['chart.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('chart_sync_gap', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chart_sync_gap_chart_id'), ['chart_id'], unique=False)
    with op.batch_alter_table('chart_sync_heal', schema=None) as batch_op:
        batch_op.drop_index('ix_chart_sync_heal_chart_status')
    op.drop_table('chart_sync_heal')
