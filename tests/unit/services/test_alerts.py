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
from chartsync.builders import callbacks
from chartsync.core.alerts import Alert
from chartsync.core.paging import PageRequest
from chartsync.store import alerts as alert_store
from chartsync.store.engine import engine_for_url
from chartsync.store.migrate import upgrade
from chartsync.store.tables import (
    chart,
    chart_ranking,
    chart_ranking_quality,
    chart_sync_alert,
    chart_sync_execution,
    chart_sync_schedule,
)
from conftest import migrated_sqlite, run_coroutine
from stacks import alert_channel_env
from sqlalchemy import create_engine, delete, insert, select, update

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
RUN_ID = "scheduled__2026-11-23T00:00:00+00:00"


def deadline_alert() -> Alert:
    return Alert(kind="deadline", summary="Period 2026-11-23 was not synced within 12 h of its end.",
                 chart_id=3, chart="spotify-top-200-global-daily", chart_name="Top 200 Global", schedule_id=7,
                 dag_id="chart_sync__spotify-top-200-global-daily", run_id=RUN_ID, period=date(2026, 11, 23),
                 details=("deadline: 2026-11-24 12:00 UTC",))


def listed(engine, limit: int = 100, offset: int = 0, **filters) -> tuple[list[dict], int]:
    page = alerts.list_alerts(engine, paging=PageRequest(limit, offset), **filters)
    return page.items, page.total


# -- the chart DB: recording, listing, callbacks, digest, retention --------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        path = tmp_path / "chart.db"
        engine = migrated_sqlite(path)
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
        alert_store.record_alert(engine, Alert("failure", f"f{i}", chart_id=daily, dag_id="d", run_id=f"r{i}"),
                            f"m{i}", {"webhook": "sent"}, NOW - timedelta(hours=i))
    alert_store.record_alert(engine, Alert("deadline", "late", chart_id=weekly), "late", {},
                        NOW - timedelta(days=3))
    rows, total = listed(engine)
    assert total == 6 and [r["message"] for r in rows] == ["m0", "m1", "m2", "m3", "m4", "late"]
    first = rows[0]
    assert first["chart"] == "spotify-top-200-global-daily" and first["schedule_id"] is not None
    assert first["channels"] == {"webhook": "sent"} and first["created_at"] == NOW
    assert first["links"]["dag_run"] == "http://airflow.test/dags/d/runs/r0"
    assert first["links"]["schedule"] == f"http://airflow.test/chart-sync/ui/schedules/{first['schedule_id']}"
    rows, total = listed(engine, kind="failure", limit=2, offset=2)
    assert total == 5 and [r["message"] for r in rows] == ["m2", "m3"]
    assert listed(engine, chart_id=weekly)[1] == 1
    assert listed(engine, since=NOW - timedelta(hours=2, minutes=30))[1] == 3
    with pytest.raises(ValueError, match="kind"):
        listed(engine, kind="nope")
    with pytest.raises(ValueError):
        listed(engine, limit=0)


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
    rows, total = listed(engine, kind="deadline")
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


def triggerer_context(deadline_time: datetime, run_type="scheduled", state="running", period=date(2026, 11, 23),
                      queued_at="2026-11-24T00:00:05Z") -> dict:
    """What the scheduler hands a deadline callback (DAGRunResponse as JSON, the deadline)."""
    start = datetime.combine(period, datetime.min.time(), UTC)
    return {"dag_run": {"dag_id": "chart_sync__spotify-top-200-global-daily",
                        "dag_run_id": f"scheduled__{period.isoformat()}T00:00:00+00:00",
                        "run_type": run_type, "state": state, "queued_at": queued_at,
                        "logical_date": start.isoformat(), "data_interval_start": start.isoformat(),
                        "data_interval_end": (start + timedelta(days=1)).isoformat()},
            "deadline": {"id": "0193", "deadline_time": deadline_time}}


def miss(engine, kind, context):
    return alerts.handle_deadline_miss(kind, context, frequency="daily", allowed_hours=12.0, engine=engine).alert


def schedule_id_of(engine, slug="spotify-top-200-global-daily") -> int:
    return alert_store.chart_of_dag(engine, f"chart_sync__{slug}").schedule_id


def test_a_missed_deadline_is_recorded_with_what_was_missed(engine):
    alert = miss(engine, "deadline", triggerer_context(datetime(2026, 11, 24, 12, tzinfo=UTC)))
    assert alert.period == date(2026, 11, 23) and alert.run_id == RUN_ID
    assert "not synced within 12 h of its end (2026-11-24 00:00 UTC)" in alert.summary
    assert "the run was running at the deadline, 2026-11-24 12:00 UTC" in alert.summary
    (row,), _ = listed(engine)
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
    assert listed(engine)[1] == 0


def test_a_catchup_or_backfill_run_past_its_deadline_records_and_sends_nothing(engine, alert_receiver,
                                                                              monkeypatch):
    """Daily, 48 h to sync, schedule created 11-24 10:00: the deadline of period 11-21 (11-24 00:00) had
    passed before the schedule existed, but 11-22's (11-25 00:00) and 11-23's had not. The runs of 11-21
    and 11-22 were created, late, after newer periods had ended: catchup, no alert. 11-23's run is the
    newest period's: it alerts."""
    for key, value in alert_channel_env(alert_receiver, channels="webhook").items():
        monkeypatch.setenv(key, value)
    created = datetime(2026, 11, 24, 10, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(update(chart_sync_schedule).where(chart_sync_schedule.c.chart_id == chart_id(engine))
                     .values(created_at=created, deadline_hours=48))
    queued = "2026-11-24T10:00:30Z"  # catchup created every run at once (max_active_runs aside)
    outcomes = {}
    for day in (21, 22, 23):
        period = date(2026, 11, day)
        deadline = datetime.combine(period, datetime.min.time(), UTC) + timedelta(days=1, hours=48)
        for kind in ("deadline", "degradation"):
            outcomes[kind, day] = alerts.handle_deadline_miss(
                kind, triggerer_context(deadline, period=period, queued_at=queued), frequency="daily",
                allowed_hours=48.0, engine=engine)
    backfill = alerts.handle_deadline_miss(
        "deadline", triggerer_context(NOW, run_type="backfill", period=date(2026, 11, 22),
                                      queued_at="2026-11-24T14:00:00Z"),
        frequency="daily", allowed_hours=48.0, engine=engine)
    catchup = "catchup run: a newer period had ended when the run was created"
    assert {key: o.reason for key, o in outcomes.items() if key[1] != 23} == {
        ("deadline", 21): catchup, ("degradation", 21): catchup,
        ("deadline", 22): catchup, ("degradation", 22): catchup}
    assert backfill.alert is None and backfill.reason == "backfill run"
    assert str(backfill) == "no deadline alert for spotify-top-200-global-daily: backfill run"
    newest = outcomes["deadline", 23]
    assert newest.alert is not None and newest.alert.period == date(2026, 11, 23)
    # its degradation deadline counts from a period that ended before the schedule existed: none either
    assert outcomes["degradation", 23].reason.startswith("history catch-up")
    (row,), _ = listed(engine)
    assert (row["kind"], row["period"]) == ("deadline", date(2026, 11, 23))
    assert {p.json()["period"] for p in alert_receiver.posts("/webhook")} == {"2026-11-23"}


def test_after_the_schedule_is_removed_and_added_again_the_alert_links_the_new_schedule(engine):
    """The deadline of a run created before the schedule was removed still carries the old schedule's id
    in its kwargs (as Airflow stored them); the callback finds the chart by the run's DAG instead."""
    cid, old_id = chart_id(engine), schedule_id_of(engine)
    with engine.begin() as conn:
        conn.execute(delete(chart_sync_schedule).where(chart_sync_schedule.c.id == old_id))
    gone = alerts.handle_deadline_miss("deadline", triggerer_context(NOW), frequency="daily",
                                       allowed_hours=12.0, engine=engine)
    assert gone.alert is None and gone.reason == "the chart has no sync schedule any more"
    with engine.begin() as conn:
        conn.execute(insert(chart_sync_schedule).values(
            chart_id=cid, sync_frequency="daily", history_start=date(2025, 11, 24),
            created_at=NOW - timedelta(days=2), updated_at=NOW - timedelta(days=2)))
    new_id = schedule_id_of(engine)
    assert new_id != old_id
    frozen = {"schedule_id": old_id, "chart_id": cid, "chart": "spotify-top-200-global-daily",
              "chart_name": "Top 200 Global"}
    output = run_coroutine(callbacks.on_deadline_missed(  # uses chart_db from the env, as in the triggerer
        kind="deadline", frequency="daily", allowed_hours=12.0, context=triggerer_context(NOW), **frozen))
    assert output == "deadline alert raised for spotify-top-200-global-daily"
    (row,), _ = listed(engine, kind="deadline")
    assert row["schedule_id"] == new_id and row["chart_id"] == cid
    assert f"Schedule: http://airflow.test/chart-sync/ui/schedules/{new_id}" in row["message"].splitlines()
    assert f"/schedules/{old_id}" not in row["message"]


def test_a_missed_deadline_still_alerts_when_the_chart_db_is_down(alert_receiver, monkeypatch, tmp_path):
    for key, value in alert_channel_env(alert_receiver, channels="webhook").items():
        monkeypatch.setenv(key, value)
    broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    outcome = alerts.handle_deadline_miss("deadline", triggerer_context(NOW), frequency="daily",
                                          allowed_hours=12.0, engine=broken)
    assert outcome.alert.chart == "spotify-top-200-global-daily" and outcome.alert.schedule_id is None
    (sent,) = [p.json() for p in alert_receiver.posts("/webhook")]
    assert sent["kind"] == "deadline" and "schedule" not in sent["links"]


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
    callbacks.on_task_failure({"ti": ti, "exception": RuntimeError("boom")})  # uses chart_db from the env
    (row,), total = listed(engine, kind="failure")
    assert total == 1 and row["schedule_id"] is not None and row["run_id"] == RUN_ID


def flag_rankings(engine, chart_id_: int, checks: dict[date, tuple[list[str], datetime]]) -> None:
    """Rankings of the periods with quality rows (flags, checked at), as the sync stores them."""
    with engine.begin() as conn:
        for period, (flags, checked_at) in checks.items():
            ranking_id = conn.execute(insert(chart_ranking).values(
                chart_id=chart_id_, period=period, ranking_date=period.isoformat(), entry_count=150,
                fetched_at=checked_at)).inserted_primary_key[0]
            conn.execute(insert(chart_ranking_quality).values(
                ranking_id=ranking_id, chart_id=chart_id_, period=period, entry_count=150, expected_count=200,
                missing_positions=50 if "gaps" in flags else 0, new_share=0.1, flags=flags, flagged=bool(flags),
                checked_at=checked_at))


def test_digest_lists_overdue_failures_and_misses_and_alerts_new_overdue_once(engine):
    weekly = chart_id(engine, "deezer-top-100-fr-weekly")
    with engine.begin() as conn:  # the daily chart synced an hour ago; the weekly one 12 days ago
        for cid, ago in ((chart_id(engine), timedelta(hours=1)), (weekly, timedelta(days=12))):
            conn.execute(insert(chart_sync_execution).values(
                chart_id=cid, dag_id="d", run_id="r", period=date(2026, 11, 1), status="success",
                started_at=NOW - ago, completed_at=NOW - ago))
    failure = Alert("failure", "x", chart_id=weekly, dag_id="chart_sync__deezer-top-100-fr-weekly",
                    run_id="r9", period=date(2026, 11, 17))
    alert_store.record_alert(engine, failure, "x", {}, NOW - timedelta(hours=3))
    alert_store.record_alert(engine, Alert("deadline", "y", chart_id=weekly), "y", {}, NOW - timedelta(days=2))
    flag_rankings(engine, chart_id(engine), {date(2026, 11, 22): (["short", "gaps"], NOW - timedelta(hours=5)),
                                             date(2026, 11, 23): (["short"], NOW - timedelta(hours=1)),
                                             date(2026, 11, 10): (["churn"], NOW - timedelta(days=3)),
                                             date(2026, 11, 21): ([], NOW - timedelta(hours=2))})
    result = alerts.run_digest(engine, NOW)
    assert result["overdue"] == ["deezer-top-100-fr-weekly"] and result["new_overdue_alerts"] == 1
    assert (result["failures"], result["deadline_misses"]) == (1, 0)  # the miss is older than a day
    # flagged in the window: the clean one and the one checked three days ago do not count
    assert result["rankings_flagged"] == 2 and result["flagged_charts"] == {"spotify-top-200-global-daily": 2}
    (digest,), _ = listed(engine, kind="digest")
    assert "1 overdue schedule(s), 1 failure(s), 0 deadline miss(es)" in digest["message"]
    assert "0 failed try(ies), 2 ranking(s) flagged." in digest["message"]
    schedule_id = alert_store.chart_of_dag(engine, "chart_sync__spotify-top-200-global-daily").schedule_id
    assert ("ranking quality: Top 200 Global (spotify-top-200-global-daily), 2 ranking(s) flagged (short 2, gaps 1) "
            f"http://airflow.test/chart-sync/ui/schedules/{schedule_id}") in digest["message"]
    assert ("overdue: FR (deezer-top-100-fr-weekly, weekly), last success 2026-11-12 15:00 UTC"
            in digest["message"])
    assert "sync failed: FR, period 2026-11-17" in digest["message"]
    (overdue,), _ = listed(engine, kind="overdue")
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
    alert_id = alert_store.record_alert(enforcing, replace(deadline_alert(), chart_id=987654), "gone", {}, NOW)
    with engine.connect() as conn:
        row = conn.execute(select(chart_sync_alert).where(chart_sync_alert.c.id == alert_id)).one()
    assert (row.message, row.chart_id) == ("gone", None)


def test_a_manual_run_for_a_day_is_about_that_days_period(engine):
    context = triggerer_context(datetime(2026, 11, 24, 12, tzinfo=UTC), run_type="manual")
    context["dag_run"] |= {"dag_run_id": "manual__2026-11-23", "data_interval_start": "2026-11-22T00:00:00Z",
                           "data_interval_end": "2026-11-23T00:00:00Z"}
    alert = miss(engine, "deadline", context)
    assert (alert.period, alert.run_id) == (date(2026, 11, 23), "manual__2026-11-23")
