"""Alerts: deadlines per frequency, the rules, message text, channels, recording, digest and retention."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from chartsync.services import alerts
from chartsync.seam import notifiers
from chartsync.services import retention
from chartsync.services.alerts import Alert
from chartsync.store.engine import engine_for_url
from chartsync.store.migrate import upgrade
from chartsync.store.tables import (
    chart,
    chart_ranking,
    chart_sync_alert,
    chart_sync_execution,
    chart_sync_schedule,
)
from chartsync.core.calendar import Frequency
from chartsync.services.schedules import ScheduleConfig
from conftest import alert_channel_env
from sqlalchemy import create_engine, insert, select

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
RUN_ID = "scheduled__2026-11-23T00:00:00+00:00"


def config(frequency=Frequency.DAILY, deadline_hours=None, custom_interval_hours=None, cron_expression=None):
    return ScheduleConfig(
        schedule_id=7, chart_id=3, slug="spotify-top-200-global-daily", chart_name="Top 200 Global",
        platform="spotify", country_code=None, chart_frequency="daily", frequency=frequency,
        custom_interval_hours=custom_interval_hours, cron_expression=cron_expression, weekday=None,
        is_active=True, sync_immediately=True, sync_historical_data=False, fetch_track_metadata=True,
        history_start=date(2025, 11, 24), deadline_hours=deadline_hours, created_on=date(2026, 11, 1))


# -- deadlines -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("frequency", "kwargs", "hours"), [
    ("daily", {}, 12), ("weekly", {}, 48), ("monthly", {}, 96),
    ("custom", {"custom_interval_hours": 6}, 12), ("cron", {"cron_expression": "0 */4 * * *"}, 8),
    ("cron", {"cron_expression": "0 6 * * MON,THU"}, 2 * 96),  # the longest gap: Thursday -> Monday
])
def test_default_deadline_per_frequency(frequency, kwargs, hours):
    assert alerts.default_deadline_hours(frequency, **kwargs) == hours


def test_the_schedule_deadline_hours_win_over_the_default():
    assert alerts.deadline_hours("weekly", 5.5) == 5.5
    assert alerts.deadline_hours("weekly", None) == 48
    assert alerts.deadline_hours("weekly", 0) == 48


@pytest.mark.parametrize(("frequency", "kwargs", "expected"), [
    ("daily", {}, timedelta(days=1, hours=12)),
    ("weekly", {}, timedelta(days=9)),
    ("monthly", {}, timedelta(days=31, hours=96)),  # the longest month: never early
    ("custom", {"custom_interval_hours": 6}, timedelta(hours=18)),
    ("daily", {"configured": 0.5}, timedelta(days=1, minutes=30)),
])
def test_sync_deadline_is_one_period_after_the_logical_date_plus_allowed_hours(frequency, kwargs, expected):
    configured = kwargs.pop("configured", None)
    assert alerts.sync_deadline(frequency, configured, **kwargs) == expected


def test_a_chart_dag_gets_a_logical_date_deadline_and_an_average_runtime_deadline(monkeypatch):
    from airflow.sdk.definitions.deadline import AverageRuntimeDeadline, DagRunLogicalDateDeadline

    monkeypatch.delenv(alerts.DISABLE_ENV, raising=False)
    monkeypatch.setattr("sys.argv", ["/venv/bin/airflow", "dag-processor"])
    sync, slow = alerts.deadlines_for(config(Frequency.WEEKLY, deadline_hours=10))
    assert isinstance(sync.reference, DagRunLogicalDateDeadline)
    assert sync.interval == timedelta(days=7, hours=10)
    assert sync.callback.path == "chartsync.services.alerts.on_deadline_missed"
    assert sync.callback.kwargs == {"kind": "deadline", "schedule_id": 7, "chart_id": 3,
                                    "chart": "spotify-top-200-global-daily", "chart_name": "Top 200 Global",
                                    "frequency": "weekly", "allowed_hours": 10.0}
    assert isinstance(slow.reference, AverageRuntimeDeadline)
    assert (slow.reference.max_runs, slow.reference.min_runs) == (20, 5)
    assert slow.interval == alerts.DEGRADATION_SLACK and slow.callback.kwargs["kind"] == "degradation"


def test_chart_dag_with_deadlines_serializes(monkeypatch):
    from airflow.serialization.serialized_objects import DagSerialization
    from chartsync.builders.chart_dags import build_dag

    monkeypatch.setattr("sys.argv", ["/venv/bin/airflow", "dag-processor"])
    dag = build_dag(config())
    serialized = DagSerialization.serialize_dag(dag)
    assert len(serialized["deadline"]) == 2
    assert dag.task_dict["sync_ranking"].on_failure_callback == [alerts.on_task_failure]


@pytest.mark.parametrize(("argv", "env", "enabled"), [
    (["/venv/bin/airflow", "dags", "test", "chart_sync__x", "2026-11-20"], "", False),
    (["/venv/lib/python3.11/site-packages/airflow/__main__.py", "dags", "test", "chart_sync__x"], "", False),
    (["/venv/bin/airflow", "dags", "list"], "", True),
    (["/venv/bin/airflow", "dag-processor"], "", True),
    (["/venv/bin/airflow", "scheduler"], "off", False),
])
def test_deadlines_are_left_out_under_airflow_dags_test(monkeypatch, argv, env, enabled):
    monkeypatch.setenv(alerts.DISABLE_ENV, env)
    assert alerts.deadlines_enabled(argv) is enabled


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


# -- the chart DB: recording, listing, callbacks, digest, retention --------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        path = tmp_path / "chart.db"
        engine = create_engine(f"sqlite:///{path}")
        conn_json = json.dumps({"conn_type": "sqlite", "host": str(path)})
    else:
        pg = request.getfixturevalue("postgres")
        name = pg.create_database(f"alerts_{tmp_path.name[-20:].lower().replace('-', '_')}")
        engine, conn_json = create_engine(pg.url(name)), pg.conn_json(name)
    upgrade(engine)
    monkeypatch.setenv("AIRFLOW_CONN_CHART_DB", conn_json)
    monkeypatch.setenv("AIRFLOW_VAR_CHARTSYNC_ALERT_CHANNELS", "")
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.test")
    with engine.begin() as conn:
        for slug, name in (("spotify-top-200-global-daily", "Top 200 Global"),
                           ("deezer-top-100-fr-weekly", "FR")):
            chart_id = conn.execute(insert(chart).values(
                slug=slug, name=name, platform="spotify", frequency="daily", created_at=NOW,
            )).inserted_primary_key[0]
            conn.execute(insert(chart_sync_schedule).values(
                chart_id=chart_id, sync_frequency="daily" if "daily" in slug else "weekly",
                history_start=date(2025, 11, 24), created_at=NOW - timedelta(days=20),
                updated_at=NOW - timedelta(days=20)))
    yield engine
    engine.dispose()
    engine_for_url.cache_clear()  # the callbacks' own engines (chart_db from the env)


def chart_id(engine, slug="spotify-top-200-global-daily") -> int:
    with engine.connect() as conn:
        return conn.execute(select(chart.c.id).where(chart.c.slug == slug)).scalar_one()


def test_list_alerts_filters_pages_and_counts(engine):
    daily, weekly = chart_id(engine), chart_id(engine, "deezer-top-100-fr-weekly")
    for i in range(5):
        alerts.record_alert(engine, Alert("failure", f"f{i}", chart_id=daily, dag_id="d", run_id=f"r{i}"),
                            f"m{i}", {"webhook": "sent"}, NOW - timedelta(hours=i))
    alerts.record_alert(engine, Alert("deadline", "late", chart_id=weekly), "late", {},
                        NOW - timedelta(days=3))
    rows, total = alerts.list_alerts(engine)
    assert total == 6 and [r["message"] for r in rows] == ["m0", "m1", "m2", "m3", "m4", "late"]
    first = rows[0]
    assert first["chart"] == "spotify-top-200-global-daily" and first["schedule_id"] is not None
    assert first["channels"] == {"webhook": "sent"} and first["created_at"] == NOW
    assert first["links"]["dag_run"] == "http://airflow.test/dags/d/runs/r0"
    assert first["links"]["schedule"] == f"http://airflow.test/chart-sync/ui/schedules/{first['schedule_id']}"
    rows, total = alerts.list_alerts(engine, kind="failure", limit=2, offset=2)
    assert total == 5 and [r["message"] for r in rows] == ["m2", "m3"]
    assert alerts.list_alerts(engine, chart_id=weekly)[1] == 1
    assert alerts.list_alerts(engine, since=NOW - timedelta(hours=2, minutes=30))[1] == 3
    with pytest.raises(ValueError, match="kind"):
        alerts.list_alerts(engine, kind="nope")
    with pytest.raises(ValueError):
        alerts.list_alerts(engine, limit=0)


def test_every_channel_delivers_and_a_failing_one_stops_nothing(engine, alert_receiver, smtp_receiver,
                                                               monkeypatch):
    for key, value in alert_channel_env(alert_receiver, smtp_receiver, "webhook,slack,email").items():
        monkeypatch.setenv(key, value)
    outcome = alerts.raise_alert(replace(deadline_alert(), chart_id=chart_id(engine)), engine, now=NOW)
    assert outcome == {"webhook": "sent", "slack": "sent", "email": "sent"}
    hook = alert_receiver.posts("/webhook")[0].json()
    assert hook["kind"] == "deadline" and hook["chart"]["slug"] == "spotify-top-200-global-daily"
    assert hook["links"]["dag_run"].startswith("http://airflow.test/dags/chart_sync__spotify")
    assert "Top 200 Global" in alert_receiver.posts("/slack")[0].json()["text"]
    assert "Subject: [chart-sync] Sync deadline missed: Top 200 Global" in smtp_receiver.messages[0]

    monkeypatch.setenv("AIRFLOW_CONN_CHARTSYNC_ALERT_WEBHOOK",
                       json.dumps({"conn_type": "http", "host": f"{alert_receiver.url}/fail"}))
    monkeypatch.setenv("AIRFLOW_CONN_CHARTSYNC_ALERT_SLACK",
                       json.dumps({"conn_type": "slackwebhook", "password": "http://127.0.0.1:9/closed"}))
    outcome = alerts.raise_alert(replace(deadline_alert(), chart_id=chart_id(engine)), engine, now=NOW)
    assert outcome["webhook"].startswith("failed: ") and "500" in outcome["webhook"]
    assert outcome["slack"].startswith("failed: ") and outcome["email"] == "sent"
    rows, total = alerts.list_alerts(engine, kind="deadline")
    assert total == 2 and rows[0]["channels"] == outcome
    assert rows[0]["period"] == date(2026, 11, 23)
    assert "DAG run: http://airflow.test/dags/" in rows[0]["message"]


def test_an_unreachable_chart_db_does_not_stop_delivery(alert_receiver, monkeypatch, tmp_path):
    for key, value in alert_channel_env(alert_receiver, channels="webhook").items():
        monkeypatch.setenv(key, value)
    broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    assert alerts.raise_alert(deadline_alert(), broken) == {"webhook": "sent"}


def test_channel_list_parsing():
    assert notifiers.parse_channels(" Webhook, slack,,email;webhook ") == ["webhook", "slack", "email"]
    assert notifiers.parse_channels(None) == []


def triggerer_context(deadline_time: datetime, run_type="scheduled", state="running") -> dict:
    """What the scheduler hands a deadline callback (DAGRunResponse as JSON, the deadline)."""
    return {"dag_run": {"dag_id": "chart_sync__spotify-top-200-global-daily", "dag_run_id": RUN_ID,
                        "run_type": run_type, "state": state, "queued_at": "2026-11-24T00:00:05Z",
                        "logical_date": "2026-11-23T00:00:00Z", "data_interval_start": "2026-11-23T00:00:00Z",
                        "data_interval_end": "2026-11-24T00:00:00Z"},
            "deadline": {"id": "0193", "deadline_time": deadline_time}}


def miss(engine, kind, context):
    return alerts.handle_deadline_miss(kind, context, schedule_id=1, chart_id=chart_id(engine),
                                       chart="spotify-top-200-global-daily", chart_name="Top 200 Global",
                                       frequency="daily", allowed_hours=12.0, engine=engine)


def test_a_missed_deadline_is_recorded_with_what_was_missed(engine):
    alert = miss(engine, "deadline", triggerer_context(datetime(2026, 11, 24, 12, tzinfo=UTC)))
    assert alert.period == date(2026, 11, 23) and alert.run_id == RUN_ID
    assert "not synced within 12 h of its end (2026-11-24 00:00 UTC)" in alert.summary
    assert "the run was running at the deadline, 2026-11-24 12:00 UTC" in alert.summary
    (row,), _ = alerts.list_alerts(engine)
    assert row["kind"] == "deadline" and row["dag_id"] == "chart_sync__spotify-top-200-global-daily"
    slow = miss(engine, "degradation", triggerer_context("2026-11-24T12:00:00+00:00"))
    assert "average runtime" in slow.summary


def test_history_and_stored_periods_raise_no_deadline_alert(engine):
    before_creation = NOW - timedelta(days=25)
    assert miss(engine, "deadline", triggerer_context(before_creation)) is None
    assert miss(engine, "deadline", triggerer_context(NOW, run_type="backfill")) is None
    with engine.begin() as conn:
        conn.execute(insert(chart_ranking).values(chart_id=chart_id(engine), period=date(2026, 11, 23),
                                                  ranking_date="2026-11-23T00:00:00+00:00", entry_count=1,
                                                  fetched_at=NOW))
    assert miss(engine, "deadline", triggerer_context(NOW)) is None
    assert alerts.list_alerts(engine)[1] == 0


def test_failure_alert_only_when_no_retry_is_left(engine):
    with engine.begin() as conn:
        conn.execute(insert(chart_sync_execution).values(
            chart_id=chart_id(engine), dag_id="chart_sync__spotify-top-200-global-daily", run_id=RUN_ID,
            try_number=4, period=date(2026, 11, 23), status="failed", started_at=NOW,
            error="SoundchartsServerError: GET /ranking: 500 after 4 attempts"))
    ti = SimpleNamespace(state="up_for_retry", dag_id="chart_sync__spotify-top-200-global-daily",
                         run_id=RUN_ID, task_id="sync_ranking", try_number=2)
    assert alerts.failure_alert({"ti": ti}, engine) is None
    ti.state, ti.try_number = "failed", 4
    alert = alerts.failure_alert({"ti": ti, "exception": RuntimeError("500 after 4 attempts")}, engine)
    assert (alert.kind, alert.period, alert.chart_name) == ("failure", date(2026, 11, 23), "Top 200 Global")
    assert alert.summary == "sync_ranking failed after 4 tries, no retries left: 500 after 4 attempts"
    assert "last recorded error: SoundchartsServerError" in alert.details[0]
    alerts.on_task_failure({"ti": ti, "exception": RuntimeError("boom")})  # uses chart_db from the env
    (row,), total = alerts.list_alerts(engine, kind="failure")
    assert total == 1 and row["schedule_id"] is not None and row["run_id"] == RUN_ID


def test_digest_lists_overdue_failures_and_misses_and_alerts_new_overdue_once(engine):
    weekly = chart_id(engine, "deezer-top-100-fr-weekly")
    with engine.begin() as conn:  # the daily chart synced an hour ago; the weekly one 12 days ago
        for cid, ago in ((chart_id(engine), timedelta(hours=1)), (weekly, timedelta(days=12))):
            conn.execute(insert(chart_sync_execution).values(
                chart_id=cid, dag_id="d", run_id="r", period=date(2026, 11, 1), status="success",
                started_at=NOW - ago, completed_at=NOW - ago))
    failure = Alert("failure", "x", chart_id=weekly, dag_id="chart_sync__deezer-top-100-fr-weekly",
                    run_id="r9", period=date(2026, 11, 17))
    alerts.record_alert(engine, failure, "x", {}, NOW - timedelta(hours=3))
    alerts.record_alert(engine, Alert("deadline", "y", chart_id=weekly), "y", {}, NOW - timedelta(days=2))
    result = alerts.run_digest(engine, NOW)
    assert result["overdue"] == ["deezer-top-100-fr-weekly"] and result["new_overdue_alerts"] == 1
    assert (result["failures"], result["deadline_misses"]) == (1, 0)  # the miss is older than a day
    (digest,), _ = alerts.list_alerts(engine, kind="digest")
    assert "1 overdue schedule(s), 1 failure(s), 0 deadline miss(es)" in digest["message"]
    assert ("overdue: FR (deezer-top-100-fr-weekly, weekly), last success 2026-11-12 15:00 UTC"
            in digest["message"])
    assert "sync failed: FR, period 2026-11-17" in digest["message"]
    (overdue,), _ = alerts.list_alerts(engine, kind="overdue")
    assert overdue["chart"] == "deezer-top-100-fr-weekly" and "No successful sync since" in overdue["message"]
    assert alerts.run_digest(engine, NOW + timedelta(hours=1))["new_overdue_alerts"] == 0


def test_retention_days_setting():
    assert retention.retention_days(None) == 180
    assert retention.retention_days(" 30 ") == 30
    with pytest.raises(ValueError, match="chartsync_retention_days"):
        retention.retention_days("soon")
    with pytest.raises(ValueError, match="at least 1"):
        retention.retention_days(0)


def test_retention_prunes_only_rows_past_the_age(engine):
    cid = chart_id(engine)
    with engine.begin() as conn:
        for days in (200, 181, 179, 1):
            conn.execute(insert(chart_sync_execution).values(
                chart_id=cid, dag_id="d", run_id=f"r{days}", status="success",
                started_at=NOW - timedelta(days=days)))
            conn.execute(insert(chart_sync_alert).values(kind="failure", chart_id=cid, message=f"a{days}",
                                                         created_at=NOW - timedelta(days=days)))
    removed = retention.prune(engine, 180, now=NOW)
    assert (removed["executions_deleted"], removed["alerts_deleted"]) == (2, 2)
    with engine.connect() as conn:
        assert sorted(r.run_id for r in conn.execute(select(chart_sync_execution))) == ["r1", "r179"]
        assert sorted(r.message for r in conn.execute(select(chart_sync_alert))) == ["a1", "a179"]


def test_an_alert_about_a_deleted_chart_is_still_recorded(engine):
    enforcing = engine_for_url(engine.url.render_as_string(hide_password=False))  # SQLite: foreign_keys=ON
    alert_id = alerts.record_alert(enforcing, replace(deadline_alert(), chart_id=987654), "gone", {}, NOW)
    with engine.connect() as conn:
        row = conn.execute(select(chart_sync_alert).where(chart_sync_alert.c.id == alert_id)).one()
    assert (row.message, row.chart_id) == ("gone", None)


def test_a_manual_run_for_a_day_is_about_that_days_period(engine):
    context = triggerer_context(datetime(2026, 11, 24, 12, tzinfo=UTC), run_type="manual")
    context["dag_run"] |= {"dag_run_id": "manual__2026-11-23", "data_interval_start": "2026-11-22T00:00:00Z",
                           "data_interval_end": "2026-11-23T00:00:00Z"}
    alert = miss(engine, "deadline", context)
    assert (alert.period, alert.run_id) == (date(2026, 11, 23), "manual__2026-11-23")
