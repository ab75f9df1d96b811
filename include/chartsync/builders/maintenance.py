"""The maintenance DAGs: the daily gap audit and retention; the work is ``services.gaps`` and
``services.retention``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from airflow.sdk import DAG, task

from chartsync import settings
from chartsync.builders.defaults import housekeeping_dag_kwargs
from chartsync.seam.connections import get_variable
from chartsync.services import gaps, retention, schedules
from chartsync.soundcharts.client import SoundchartsClient
from chartsync.store.engine import chart_engine

log = logging.getLogger(__name__)


def build_gap_audit_dag() -> DAG:
    with DAG(
        dag_id=settings.GAP_AUDIT_DAG_ID,
        description="Refresh the expected periods of every active schedule from the API's published rankings",
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        **housekeeping_dag_kwargs("0 3 * * *", "maintenance", calls_api=True),
        doc_md=(
            "# Gap audit\n\nDaily (and on demand: trigger it). For every active chart schedule it asks the "
            "API which periods it published in the history window and stores them beside the calendar's "
            "periods (the API wins where they differ). Gaps and coverage are not stored: every page, the "
            "REST API and `chartsync gaps list` compute them when asked. Close the gaps with "
            "`chartsync gaps heal --all` or the chart-sync admin page. The task also sends each chart's "
            "coverage, missing periods and freshness as gauges (`chartsync.chart.*`, see docs/metrics.md)."
        ),
    ) as dag:

        @task(task_id="audit_gaps", multiple_outputs=False)  # one XCom, not one per key
        def audit_gaps() -> dict:
            engine = chart_engine()
            configs, invalid = schedules.active_configs(engine)
            for slug, error in invalid:
                log.error("skipping %s: %s", slug, error)
            client = SoundchartsClient()
            sources = gaps.refresh_expected_periods(engine, client, configs)
            gauges = gaps.send_chart_gauges(engine, configs)  # coverage, missing periods, freshness per chart
            # gaps are not listed here: a gap is a missing period behind the DAG's catchup front, which
            # only Airflow's metadata DB knows, and a task has no access to it in Airflow 3
            log.info("expected periods refreshed for %d chart(s); the gaps: `chartsync gaps list` or the "
                     "chart-sync pages", len(sources))
            return {"charts": len(sources), "api_requests": client.request_count, "gauges": gauges,
                    "differences": {s.slug: {"not_published": [d.isoformat() for d in s.calendar_only],
                                             "off_calendar": [d.isoformat() for d in s.api_only]}
                                    for s in sources if s.calendar_only or s.api_only}}

        audit_gaps()
    return dag


def build_retention_dag():
    with DAG(
        dag_id=settings.RETENTION_DAG_ID,
        description="Prune chart_sync_execution and chart_sync_alert rows past the retention age",
        **housekeeping_dag_kwargs("30 3 * * *", "maintenance"),
        doc_md=(
            "# Retention\n\nDaily at 03:30 UTC (and on demand). Deletes `chart_sync_execution` rows started, "
            f"and `chart_sync_alert` rows created, more than `{settings.RETENTION_VARIABLE}` days ago (Airflow "
            f"Variable, default {settings.DEFAULT_RETENTION_DAYS}). Rankings and tracks are never touched. The task "
            "log and its return value say what was removed."
        ),
    ) as dag:

        @task(task_id="prune_history", multiple_outputs=False)  # one XCom, not one per key
        def prune_history() -> dict:
            days = retention.retention_days(get_variable(settings.RETENTION_VARIABLE))
            return retention.prune(chart_engine(), days)

        prune_history()
    return dag
