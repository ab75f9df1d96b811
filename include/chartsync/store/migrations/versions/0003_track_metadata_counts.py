"""track metadata counts and audience fetch time

Revision ID: 0003
Revises: 0002

The track metadata DAG credits the metadata it fetched to the sync execution that found the
tracks; the index serves its sweep for tracks whose metadata is missing or stale.
``track.audience_fetched_at`` says when a song's audience was last fetched, even when the API
had no data points for it (so an empty audience is not refetched on every page view).
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'


def upgrade() -> None:
    with op.batch_alter_table('chart_sync_execution', schema=None) as batch_op:
        batch_op.add_column(sa.Column('metadata_created', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('metadata_updated', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('track', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audience_fetched_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_track_metadata_fetched_at', ['metadata_fetched_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('track', schema=None) as batch_op:
        batch_op.drop_index('ix_track_metadata_fetched_at')
        batch_op.drop_column('audience_fetched_at')
    with op.batch_alter_table('chart_sync_execution', schema=None) as batch_op:
        batch_op.drop_column('metadata_updated')
        batch_op.drop_column('metadata_created')
