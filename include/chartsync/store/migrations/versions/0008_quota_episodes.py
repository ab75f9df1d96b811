"""quota episodes

Revision ID: 0008
Revises: 0007

``chart_sync_quota_episode``: the spells of waiting for the Soundcharts quota, at most one open (a unique
index on ``is_open``, TRUE while open and NULL once closed), so each episode's "exhausted" and "restored"
alerts go out once whichever sync notices first.
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'


def upgrade() -> None:
    op.create_table('chart_sync_quota_episode',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('is_open', sa.Boolean(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('remaining_at_start', sa.Integer(), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('remaining_at_end', sa.Integer(), nullable=True),
    sa.Column('periods_waited', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('uq_chart_sync_quota_episode_open', 'chart_sync_quota_episode', ['is_open'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_chart_sync_quota_episode_open', table_name='chart_sync_quota_episode')
    op.drop_table('chart_sync_quota_episode')
