"""one failed execution row and one failure alert per task try

Revision ID: 0004
Revises: 0003

Airflow's state is the truth: a task try that ends failed or up_for_retry is recorded by whoever
notices it first (the task body, a listener in the task, the scheduler or the api-server, or the
reconciliation with Airflow's metadata DB), so several writers race for the same try. The unique
indexes make the first write win: one ``failed`` execution row per (dag_id, run_id, try_number),
one alert per (kind, dag_id, run_id, task_id, try_number). Alerts about no try (deadline, overdue,
digest) keep ``try_number`` NULL, which a unique index never compares.
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'


def upgrade() -> None:
    # A try had at most one failed row before (the task body writes one, then raises); drop any
    # duplicate a same-second CLI sync may have left, so the index can be built.
    op.execute(
        "DELETE FROM chart_sync_execution WHERE status = 'failed' AND id NOT IN ("
        "SELECT keep FROM (SELECT MIN(id) AS keep FROM chart_sync_execution WHERE status = 'failed' "
        "GROUP BY dag_id, run_id, try_number) AS firsts)"
    )
    op.create_index('uq_chart_sync_execution_failed_try', 'chart_sync_execution',
                    ['dag_id', 'run_id', 'try_number'], unique=True,
                    sqlite_where=sa.text("status = 'failed'"), postgresql_where=sa.text("status = 'failed'"))
    with op.batch_alter_table('chart_sync_alert', schema=None) as batch_op:
        batch_op.add_column(sa.Column('task_id', sa.String(length=250), nullable=True))
        batch_op.add_column(sa.Column('try_number', sa.Integer(), nullable=True))
        batch_op.create_index('uq_chart_sync_alert_task_try',
                              ['kind', 'dag_id', 'run_id', 'task_id', 'try_number'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('chart_sync_alert', schema=None) as batch_op:
        batch_op.drop_index('uq_chart_sync_alert_task_try')
        batch_op.drop_column('try_number')
        batch_op.drop_column('task_id')
    op.drop_index('uq_chart_sync_execution_failed_try', table_name='chart_sync_execution')
