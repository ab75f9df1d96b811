"""The alert digest DAG: daily, overdue schedules, failures and deadline misses of the last day;
the work is ``services.alerts.run_digest``. (Deadline Alerts and the failure callback of every
task are in ``builders.callbacks``.)"""

from __future__ import annotations

from airflow.sdk import DAG, task

from chartsync import settings
from chartsync.builders.defaults import housekeeping_dag_kwargs
from chartsync.services import alerts
from chartsync.store.engine import chart_engine


def build_digest_dag():
    with DAG(
        dag_id=settings.DIGEST_DAG_ID,
        description="Daily alert digest: overdue schedules, failures and deadline misses of the last day",
        **housekeeping_dag_kwargs("0 7 * * *", "alerts"),
        doc_md=(
            "# Alert digest\n\nDaily at 07:00 UTC (and on demand). Lists overdue schedules (no successful "
            "sync for longer than one period plus its grace), final sync failures and deadline misses of "
            "the last 24 hours; raises a one-off `overdue` alert for each newly overdue schedule. Sent to "
            "the channels of the Variable `chartsync_alert_channels` and recorded in `chart_sync_alert`."
        ),
    ) as dag:

        @task(task_id="send_digest", multiple_outputs=False)  # one XCom, not one per key
        def send_digest() -> dict:
            return alerts.run_digest(chart_engine())

        send_digest()
    return dag
