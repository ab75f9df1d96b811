"""Alerts as values and the deadline maths: pure, plain values in and out."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from chartsync import settings
from chartsync.core import alerts, calendar
from chartsync.core.alerts import Alert

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
RUN_ID = "scheduled__2026-11-23T00:00:00+00:00"


# -- deadlines -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("frequency", "kwargs", "hours"), [
    ("daily", {}, 12), ("weekly", {}, 48), ("monthly", {}, 96),
    ("custom", {"custom_interval_hours": 6}, 12), ("cron", {"cron_expression": "0 */4 * * *"}, 8),
    ("cron", {"cron_expression": "0 6 * * MON,THU"}, 2 * 96),  # the longest gap: Thursday -> Monday
])
def test_default_deadline_per_frequency(frequency, kwargs, hours):
    assert calendar.default_deadline_hours(frequency, **kwargs) == hours


def test_the_schedule_deadline_hours_win_over_the_default():
    assert calendar.deadline_hours("weekly", 5.5) == 5.5
    assert calendar.deadline_hours("weekly", None) == 48
    assert calendar.deadline_hours("weekly", 0) == 48


@pytest.mark.parametrize(("frequency", "kwargs", "expected"), [
    ("daily", {}, timedelta(days=1, hours=12)),
    ("weekly", {}, timedelta(days=9)),
    ("monthly", {}, timedelta(days=31, hours=96)),  # the longest month: never early
    ("custom", {"custom_interval_hours": 6}, timedelta(hours=18)),
    ("daily", {"configured": 0.5}, timedelta(days=1, minutes=30)),
])
def test_sync_deadline_is_one_period_after_the_logical_date_plus_allowed_hours(frequency, kwargs, expected):
    configured = kwargs.pop("configured", None)
    assert calendar.sync_deadline(frequency, configured, **kwargs) == expected


@pytest.mark.parametrize(("argv", "env", "enabled"), [
    (["/venv/bin/airflow", "dags", "test", "chart_sync__x", "2026-11-20"], "", False),
    (["/venv/lib/python3.11/site-packages/airflow/__main__.py", "dags", "test", "chart_sync__x"], "", False),
    (["/venv/bin/airflow", "dags", "list"], "", True),
    (["/venv/bin/airflow", "dag-processor"], "", True),
    (["/venv/bin/airflow", "scheduler"], "off", False),
])
def test_deadlines_are_left_out_under_airflow_dags_test(monkeypatch, argv, env, enabled):
    monkeypatch.setenv(settings.DEADLINE_ALERTS_ENV, env)
    assert settings.deadline_alerts_enabled(argv) is enabled


# -- rules ---------------------------------------------------------------------------------------------
def test_skip_rules_keep_history_backfills_and_late_manual_runs_quiet():
    created = datetime(2026, 11, 24, 10, tzinfo=UTC)
    due = datetime(2026, 11, 24, 12, tzinfo=UTC)
    common = {"interval_end": datetime(2026, 11, 24, tzinfo=UTC), "queued_at": None,
              "schedule_created_at": created}
    assert alerts.skip_reason("deadline", run_type="scheduled", deadline_time=due, **common) is None
    assert alerts.skip_reason("deadline", run_type="backfill", deadline_time=due, **common) == "backfill run"
    assert "history" in alerts.skip_reason("deadline", run_type="scheduled",
                                           deadline_time=created - timedelta(hours=1), **common)
    late = common | {"queued_at": due + timedelta(days=30)}
    assert "manual" in alerts.skip_reason("deadline", run_type="manual", deadline_time=due, **late)
    assert alerts.skip_reason("deadline", run_type="scheduled", deadline_time=due, **late) is None
    old = common | {"interval_end": created - timedelta(days=10)}
    assert alerts.skip_reason("degradation", run_type="scheduled", deadline_time=NOW, **old) == \
        "history catch-up"
    new = common | {"interval_end": created + timedelta(hours=14)}
    assert alerts.skip_reason("degradation", run_type="scheduled", deadline_time=NOW, **new) is None


# -- message text --------------------------------------------------------------------------------------
def deadline_alert() -> Alert:
    return Alert(kind="deadline", summary="Period 2026-11-23 was not synced within 12 h of its end.",
                 chart_id=3, chart="spotify-top-200-global-daily", chart_name="Top 200 Global", schedule_id=7,
                 dag_id="chart_sync__spotify-top-200-global-daily", run_id=RUN_ID, period=date(2026, 11, 23),
                 details=("deadline: 2026-11-24 12:00 UTC",))


def test_message_names_chart_period_what_was_missed_and_links():
    text = alerts.format_message(deadline_alert(), "https://airflow.example.com/")
    lines = text.splitlines()
    assert lines[0] == "[chart-sync] Sync deadline missed: Top 200 Global, period 2026-11-23"
    assert lines[1] == "Period 2026-11-23 was not synced within 12 h of its end."
    assert "- chart: Top 200 Global (spotify-top-200-global-daily)" in lines
    assert "- deadline: 2026-11-24 12:00 UTC" in lines
    assert ("DAG run: https://airflow.example.com/dags/chart_sync__spotify-top-200-global-daily/runs/"
            "scheduled__2026-11-23T00%3A00%3A00%2B00%3A00") in lines
    assert "Schedule: https://airflow.example.com/chart-sync/ui/schedules/7" in lines


def test_links_without_a_base_url_are_relative_and_a_dag_without_run_links_the_dag():
    assert alerts.links("", dag_id="chart_sync_alert_digest") == {"dag": "/dags/chart_sync_alert_digest"}
    assert alerts.links("", schedule_id=4) == {"schedule": "/chart-sync/ui/schedules/4"}


def test_webhook_payload_is_json_with_links():
    body = alerts.payload(deadline_alert(), "text", "http://af", NOW)
    assert json.loads(json.dumps(body))["links"]["schedule"] == "http://af/chart-sync/ui/schedules/7"
    assert body["chart"] == {"id": 3, "slug": "spotify-top-200-global-daily", "name": "Top 200 Global"}
    assert (body["kind"], body["period"], body["run_id"]) == ("deadline", "2026-11-23", RUN_ID)


def test_digest_counts_flagged_rankings_and_lists_their_charts():
    since = NOW - timedelta(days=1)
    none = {"failure": [], "deadline": [], "degradation": []}
    quiet = alerts.digest_alert(alerts.Digest(since, NOW, [], none, 0), "http://af")
    assert quiet.summary.endswith("0 failed try(ies), 0 ranking(s) flagged; nothing to report.")
    flagged = [{"chart_id": 3, "chart": "spotify-top-200-global-daily", "chart_name": "Top 200 Global",
                "schedule_id": 7, "flagged": 2, "flag_counts": {"short": 2, "gaps": 1, "churn": 0}},
               {"chart_id": 4, "chart": "deezer-top-100-fr-daily", "chart_name": "FR", "schedule_id": None,
                "flagged": 1, "flag_counts": {"churn": 1}}]
    digest = alerts.Digest(since, NOW, [], none, 0, flagged)
    alert = alerts.digest_alert(digest, "http://af")
    assert digest.rankings_flagged == 3 and "3 ranking(s) flagged." in alert.summary
    assert alert.details == (
        "ranking quality: Top 200 Global (spotify-top-200-global-daily), 2 ranking(s) flagged (short 2, gaps 1) "
        "http://af/chart-sync/ui/schedules/7",
        "ranking quality: FR (deezer-top-100-fr-daily), 1 ranking(s) flagged (churn 1)")


def test_a_failure_of_a_dag_that_syncs_no_chart_is_titled_task_failed():
    chart_failure = Alert(kind=alerts.FAILURE, summary="x", chart_id=1, chart_name="Top 200 Global",
                          dag_id="chart_sync__top")
    check_failure = Alert(kind=alerts.FAILURE, summary="x", dag_id=settings.QUALITY_CHECK_DAG_ID)
    assert chart_failure.title == "[chart-sync] Sync failed: Top 200 Global"
    assert check_failure.title == f"[chart-sync] Task failed: {settings.QUALITY_CHECK_DAG_ID}"
