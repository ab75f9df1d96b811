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
def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def reason(kind="deadline", *, run_type="scheduled", start, end, queued_at, deadline_time=None,
           frequency="daily", schedule_created_at=None):
    return alerts.skip_reason(kind, run_type=run_type, deadline_time=deadline_time, interval_start=start,
                              interval_end=end, queued_at=queued_at, frequency=frequency,
                              schedule_created_at=schedule_created_at)


def test_skip_rules_keep_history_backfills_and_late_manual_runs_quiet():
    created = utc(2026, 11, 24, 10)
    due = utc(2026, 11, 24, 12)
    common = {"start": utc(2026, 11, 23), "end": utc(2026, 11, 24), "queued_at": utc(2026, 11, 24, 0, 0, 5),
              "schedule_created_at": created}
    assert reason(deadline_time=due, **common) is None
    assert reason(run_type="backfill", deadline_time=due, **common) == "backfill run"
    assert "history" in reason(deadline_time=created - timedelta(hours=1), **common)
    late = common | {"queued_at": due + timedelta(hours=1)}
    assert "manual" in reason(run_type="manual", deadline_time=due, **late)
    assert reason(deadline_time=due, **late) is None  # a scheduled run queued late, still the newest period
    old = common | {"start": created - timedelta(days=11), "end": created - timedelta(days=10),
                    "queued_at": created - timedelta(days=10)}
    assert reason("degradation", deadline_time=NOW, **old) == \
        "history catch-up: the period ended before the schedule was created"
    new = common | {"end": created + timedelta(hours=14), "queued_at": created + timedelta(hours=14)}
    assert reason("degradation", deadline_time=NOW, **new) is None


@pytest.mark.parametrize(("frequency", "start", "end", "queued_at", "catchup"), [
    # daily: the run of 04-23 is current until 04-24's period has ended (04-25 00:00)
    ("daily", utc(2026, 4, 23), utc(2026, 4, 24), utc(2026, 4, 24, 0, 0, 3), False),
    ("daily", utc(2026, 4, 23), utc(2026, 4, 24), utc(2026, 4, 24, 23, 59), False),  # a late scheduler
    ("daily", utc(2026, 4, 23), utc(2026, 4, 24), utc(2026, 4, 25), True),
    ("daily", utc(2026, 4, 23), utc(2026, 4, 24), utc(2026, 4, 30, 9), True),  # created long after its period
    # weekly and monthly: the next period's own length (February ends three days before 31 days are up)
    ("weekly", utc(2026, 4, 13), utc(2026, 4, 20), utc(2026, 4, 26, 23), False),
    ("weekly", utc(2026, 4, 13), utc(2026, 4, 20), utc(2026, 4, 27), True),
    ("monthly", utc(2026, 1, 1), utc(2026, 2, 1), utc(2026, 2, 28, 23), False),
    ("monthly", utc(2026, 1, 1), utc(2026, 2, 1), utc(2026, 3, 1, 0, 0, 1), True),
    # custom and cron: one more interval of the run's own length
    ("custom", utc(2026, 4, 24, 6), utc(2026, 4, 24, 12), utc(2026, 4, 24, 17, 59), False),
    ("custom", utc(2026, 4, 24, 6), utc(2026, 4, 24, 12), utc(2026, 4, 24, 18), True),
    ("cron", utc(2026, 4, 24, 0), utc(2026, 4, 24, 4), utc(2026, 4, 24, 8, 30), True),
])
def test_a_catchup_run_is_one_queued_after_the_next_period_had_ended(frequency, start, end, queued_at, catchup):
    assert alerts.is_catchup(run_type="scheduled", interval_start=start, interval_end=end, queued_at=queued_at,
                             frequency=frequency) is catchup


def test_only_scheduled_runs_are_catchup_runs_and_missing_times_say_no():
    span = {"interval_start": utc(2026, 4, 23), "interval_end": utc(2026, 4, 24), "frequency": "daily"}
    assert not alerts.is_catchup(run_type="manual", queued_at=utc(2026, 5, 1), **span)
    assert not alerts.is_catchup(run_type="backfill", queued_at=utc(2026, 5, 1), **span)
    assert not alerts.is_catchup(run_type="scheduled", queued_at=None, **span)


def test_catchup_and_backfill_runs_get_no_deadline_alert_whenever_the_deadline_falls():
    """A daily chart scheduled at 04-26 10:00 with 72 h to sync, history by catchup: the deadlines of
    04-23 (04-27 00:00) and 04-24 fall after the schedule's creation, so "the deadline had passed before
    the schedule was created" lets them through; their runs were created when newer periods had ended."""
    created = utc(2026, 4, 26, 10)
    for day in (23, 24):
        start = utc(2026, 4, day)
        deadline = start + timedelta(days=1, hours=72)
        assert deadline > created
        period = {"start": start, "end": start + timedelta(days=1), "schedule_created_at": created}
        catchup = reason(queued_at=created + timedelta(minutes=day), deadline_time=deadline, **period)
        assert catchup == "catchup run: a newer period had ended when the run was created"
        assert reason("degradation", queued_at=created, deadline_time=created + timedelta(hours=2),
                      **period) == catchup
        assert reason(run_type="backfill", queued_at=created + timedelta(days=3), deadline_time=deadline,
                      **period) == "backfill run"
    # the current period (04-25, ended 04-26 00:00), queued with the history: its deadline counts
    assert reason(start=utc(2026, 4, 25), end=utc(2026, 4, 26), queued_at=created + timedelta(minutes=30),
                  deadline_time=utc(2026, 4, 29), schedule_created_at=created) is None


def test_a_deadline_longer_than_the_period_still_alerts_the_current_run():
    """Custom and cron schedules allow twice their interval: when such a deadline passes a newer period
    has ended, yet the run was the current one when it was queued."""
    start, end = utc(2026, 4, 24, 6), utc(2026, 4, 24, 12)
    assert reason(frequency="custom", start=start, end=end, queued_at=end + timedelta(seconds=2),
                  deadline_time=end + timedelta(hours=12), schedule_created_at=utc(2026, 4, 1)) is None


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
