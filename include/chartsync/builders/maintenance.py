"""DAGs around the chart syncs: the gap audit (more to come: track metadata, audience, retention)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from airflow.sdk import DAG, CronTriggerTimetable, task

from chartsync.builders.chart_dags import DEFAULT_ARGS

log = logging.getLogger(__name__)

GAP_AUDIT_DAG_ID = "chart_sync_gap_audit"


def build_gap_audit_dag() -> DAG:
    with DAG(
        dag_id=GAP_AUDIT_DAG_ID,
        description="Refresh expected periods and recompute gaps and coverage for every active schedule",
        schedule=CronTriggerTimetable("0 3 * * *", timezone="UTC"),
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=False,  # the daily audit is part of the product, like the other maintenance DAGs
        default_args=DEFAULT_ARGS,
        tags=["chart-sync", "maintenance"],
        doc_md=(
            "# Gap audit\n\nDaily (and on demand: trigger it). For every active chart schedule it asks the "
            "API which periods it published in the history window, stores them beside the calendar's "
            "periods (the API wins where they differ), then recomputes gap ranges and coverage in one SQL "
            "statement. Close the gaps with `chartsync gaps heal --all` or the chart-sync admin page."
        ),
    ) as dag:

        @task(task_id="audit_gaps")
        def audit_gaps() -> dict:
            from chartsync.services import gaps
            from chartsync.services import schedules
            from chartsync.store.engine import chart_engine
            from chartsync.soundcharts.client import SoundchartsClient

            engine = chart_engine()
            configs = []
            for row in schedules.load_rows(engine):
                try:
                    config = schedules.ScheduleConfig.from_row(row)
                except schedules.ScheduleError as exc:
                    log.error("skipping %s: %s", row.slug, exc)
                    continue
                if config.is_active:
                    configs.append(config)
            client = SoundchartsClient()
            sources = gaps.refresh_expected_periods(engine, client, configs)
            found = gaps.detect_gaps(engine)
            for gap in found:
                log.info("gap %s %s..%s (%d periods): %s", gap.slug, gap.start, gap.end, gap.periods,
                         gap.backfill_command)
            return {"charts": len(sources), "gap_ranges": len(found), "api_requests": client.request_count,
                    "differences": {s.slug: {"not_published": [d.isoformat() for d in s.calendar_only],
                                             "off_calendar": [d.isoformat() for d in s.api_only]}
                                    for s in sources if s.calendar_only or s.api_only}}

        audit_gaps()
    return dag
