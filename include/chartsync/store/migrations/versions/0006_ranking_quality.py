"""ranking quality

Revision ID: 0006
Revises: 0005

``chart_ranking_quality``: the soft data-quality checks of each stored ranking (``core.quality``),
one row per ranking, written in the same transaction as the ranking.
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'


def upgrade() -> None:
    op.create_table('chart_ranking_quality',
    sa.Column('ranking_id', sa.Integer(), nullable=False),
    sa.Column('chart_id', sa.Integer(), nullable=False),
    sa.Column('period', sa.Date(), nullable=False),
    sa.Column('entry_count', sa.Integer(), nullable=False),
    sa.Column('expected_count', sa.Integer(), nullable=True),
    sa.Column('missing_positions', sa.Integer(), nullable=False),
    sa.Column('no_streams_share', sa.Float(), nullable=True),
    sa.Column('new_share', sa.Float(), nullable=False),
    sa.Column('usual_new_share', sa.Float(), nullable=True),
    sa.Column('previous_checked', sa.Integer(), server_default='0', nullable=False),
    sa.Column('previous_mismatches', sa.Integer(), nullable=True),
    sa.Column('flags', sa.JSON(), nullable=False),
    sa.Column('flagged', sa.Boolean(), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['chart_id'], ['chart.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ranking_id'], ['chart_ranking.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('ranking_id')
    )
    with op.batch_alter_table('chart_ranking_quality', schema=None) as batch_op:
        batch_op.create_index('ix_chart_ranking_quality_chart_period', ['chart_id', 'period'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('chart_ranking_quality', schema=None) as batch_op:
        batch_op.drop_index('ix_chart_ranking_quality_chart_period')
    op.drop_table('chart_ranking_quality')
