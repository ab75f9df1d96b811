"""Alerts for real: scheduler, dag-processor, api-server and triggerer against the emulator.

One Airflow, one story: a slow chart misses its sync deadline (the triggerer runs the callback,
which reaches the chart DB and the webhook/Slack connections without a task context), a chart
whose API answers 500 fails for good after its retries (one failure alert), a catchup run passes
its deadline without an alert, a chart whose schedule was removed and added again while its run
waited gets an alert that links the new schedule, the digest lists the overdue schedule, failures
and misses, and retention prunes only old rows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
from chartsync.store.tables import chart, chart_sync_alert, chart_sync_execution, chart_sync_schedule
from stacks import alert_channel_env, start_airflow, stop_airflow, wait_for
from sqlalchemy import create_engine, insert, select, text, update

pytestmark = pytest.mark.integration

SLOW = "spotify-top-200-us-daily"  # its ranking answers slowly: the run outlives its deadline
FAILING = "spotify-top-200-gb-daily"  # its ranking answers 500: every try fails
# The slow chart's latest period is due a few seconds after its schedule is created: the run the
# scheduler creates later is late at once, and its slow API keeps the period unsynced meanwhile.
DEADLINE_IN = timedelta(seconds=5)
# History by catchup (the two periods before today): the older one's deadline falls DEADLINE_IN after its
# schedule is created, and its run is created later, when a newer period has ended: catchup, no alert.
HISTORY = "spotify-top-200-fr-daily"
# Its run waits for an unpublished period while its schedule is removed and added again (a new id).
READDED = "spotify-top-200-de-daily"


class Api:
    def __init__(self, services) -> None:
        self.url = services.api_url
        self.headers = {"Authorization": f"Bearer {services.token()}"}

    def get(self, path: str):
        return requests.get(f"{self.url}/api/v2{path}", headers=self.headers, timeout=10)

    def trigger(self, dag_id: str) -> str:
        wait_for(lambda: self.get(f"/dags/{dag_id}").status_code == 200, 60, f"{dag_id} parsed")
        r = requests.post(f"{self.url}/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None},
                          headers=self.headers, timeout=10)
        r.raise_for_status()
        return r.json()["dag_run_id"]

    def finished(self, dag_id: str, run_id: str, timeout: float = 90) -> str:
        def done():
            state = self.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
            return state if state in ("success", "failed") else None

        return wait_for(done, timeout, f"{dag_id} run {run_id}", interval=1)

    def return_value(self, dag_id: str, run_id: str, task_id: str):
        r = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value")
        r.raise_for_status()
        value = r.json()["value"]
        return json.loads(value) if isinstance(value, str) else value


def airflow_db(af):
    return create_engine(af.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])


def deadline_outputs(af, slug: str) -> list[str]:
    """What the deadline callbacks of a chart DAG returned (Airflow stores it in ``callback.output``)."""
    with airflow_db(af).connect() as conn:
        return [o for (o,) in conn.execute(text("SELECT output FROM callback WHERE state = 'success'"))
                if o and slug in o]


def deadlines_of(af, dag_id: str) -> int:
    with airflow_db(af).connect() as conn:
        return conn.execute(text("SELECT count(*) FROM deadline JOIN dag_run ON dag_run.id = deadline.dagrun_id "
                                 "WHERE dag_run.dag_id = :d AND NOT deadline.missed"), {"d": dag_id}).scalar()


def pass_deadlines_now(af, dag_id: str) -> None:
    """Bring the pending deadlines of a DAG's runs forward to now, as if their time had come."""
    with airflow_db(af).begin() as conn:
        conn.execute(text("UPDATE deadline SET deadline_time = now() FROM dag_run WHERE dag_run.id = "
                          "deadline.dagrun_id AND dag_run.dag_id = :d AND NOT deadline.missed"), {"d": dag_id})


def webhook_alerts(receiver, kind: str, slug: str | None = None) -> list[dict]:
    found = [p.json() for p in receiver.posts("/webhook")]
    return [a for a in found if a["kind"] == kind and (slug is None or a["chart"]["slug"] == slug)]


def test_deadline_miss_failure_digest_and_retention(airflow_sqlite, emulator_admin, alert_receiver):
    af = airflow_sqlite
    af.env.update(alert_channel_env(alert_receiver, channels="webhook,slack"))
    af.env["CHARTSYNC_RETRY_DELAY_SECONDS"] = "1"  # 3 retries after 1, 2 and 4 s (production: 30 s doubling)
    af.chartsync("charts", "import", "--platform", "spotify")
    for slug in (SLOW, FAILING, READDED):
        af.chartsync("schedules", "add", slug, "--no-history")  # one run: the latest period (yesterday)
    af.chartsync("schedules", "add", HISTORY, "--frequency", "daily")
    engine = af.engine()
    now = datetime.now(UTC)
    period_end = datetime.combine(now.date(), datetime.min.time(), UTC)
    history_start = (period_end - timedelta(days=2)).date()

    def hours_until(deadline: datetime, end: datetime) -> float:
        return (deadline - end).total_seconds() / 3600

    with engine.begin() as conn:  # deadline = period end + N hours
        ids = dict(conn.execute(select(chart.c.slug, chart.c.id)
                                .where(chart.c.slug.in_((SLOW, FAILING, HISTORY, READDED)))).all())
        for slug, values in (
                (SLOW, {"deadline_hours": hours_until(now + DEADLINE_IN, period_end)}),
                (HISTORY, {"history_start": history_start,
                           "deadline_hours": hours_until(now + DEADLINE_IN, period_end - timedelta(days=1))}),
                (READDED, {"deadline_hours": hours_until(now + timedelta(hours=1), period_end)})):
            conn.execute(update(chart_sync_schedule).where(chart_sync_schedule.c.chart_id == ids[slug])
                         .values(**values))
        old_schedule = conn.execute(select(chart_sync_schedule.c.id)
                                    .where(chart_sync_schedule.c.chart_id == ids[READDED])).scalar_one()
    emulator_admin.fault(kind="slow", path_contains=f"{SLOW}/ranking", delay=10, count=None)
    emulator_admin.fault(kind="500", path_contains=FAILING, count=None)
    # neither period stays unsynced by luck: the catchup period and the re-added chart's period are not out
    emulator_admin.fault(kind="unpublished", path_contains=HISTORY, date=history_start.isoformat())
    emulator_admin.fault(kind="unpublished", path_contains=READDED,
                         date=(period_end - timedelta(days=1)).date().isoformat())

    services = start_airflow(af, components=("api-server", "scheduler", "dag-processor", "triggerer"))
    try:
        api = Api(services)
        missed = wait_for(lambda: webhook_alerts(alert_receiver, "deadline", SLOW), 150,
                          "the deadline alert of the slow chart", interval=1)[0]
        failed = wait_for(lambda: webhook_alerts(alert_receiver, "failure", FAILING), 150,
                          "the failure alert of the failing chart", interval=1)[0]
        catchup_outputs = wait_for(lambda: deadline_outputs(af, HISTORY), 150,
                                   "the deadline callback of the catchup run", interval=1)

        # the re-added chart: its run (and the deadline Airflow gave it) predates the new schedule
        wait_for(lambda: deadlines_of(af, f"chart_sync__{READDED}"), 150, "the re-added chart's deadline")
        af.chartsync("schedules", "remove", READDED)
        af.chartsync("schedules", "add", READDED, "--no-history")
        with engine.connect() as conn:
            new_schedule = conn.execute(select(chart_sync_schedule.c.id)
                                        .where(chart_sync_schedule.c.chart_id == ids[READDED])).scalar_one()
        pass_deadlines_now(af, f"chart_sync__{READDED}")
        readded = wait_for(lambda: webhook_alerts(alert_receiver, "deadline", READDED), 60,
                           "the deadline alert of the re-added chart", interval=1)[0]

        with engine.begin() as conn:  # the failing schedule has existed for 3 days without a success
            conn.execute(update(chart_sync_schedule).where(chart_sync_schedule.c.chart_id == ids[FAILING])
                         .values(created_at=now - timedelta(days=3)))
        digest_run = api.trigger("chart_sync_alert_digest")
        assert api.finished("chart_sync_alert_digest", digest_run) == "success"
        digest_result = api.return_value("chart_sync_alert_digest", digest_run, "send_digest")

        cid = ids[SLOW]
        with engine.begin() as conn:  # history past the retention age, and recent history
            for days in (200, 2):
                conn.execute(insert(chart_sync_execution).values(
                    chart_id=cid, dag_id="old", run_id=f"r{days}", status="success",
                    started_at=now - timedelta(days=days), completed_at=now - timedelta(days=days)))
                conn.execute(insert(chart_sync_alert).values(
                    kind="failure", chart_id=cid, message=f"old {days}",
                    created_at=now - timedelta(days=days)))
        retention_run = api.trigger("chart_sync_retention")
        assert api.finished("chart_sync_retention", retention_run) == "success"
        removed = api.return_value("chart_sync_retention", retention_run, "prune_history")
    finally:
        stop_airflow(services)

    # the deadline miss: callback in the triggerer -> webhook, Slack and a row
    assert missed["run_id"].startswith("scheduled__")
    assert missed["period"] == (now - timedelta(days=1)).date().isoformat()
    assert "was not synced within" in missed["summary"]
    run_page = f"{services.api_url}/dags/chart_sync__{SLOW}/runs/scheduled__"
    assert missed["links"]["dag_run"].startswith(run_page)
    assert missed["links"]["schedule"].startswith(f"{services.api_url}/chart-sync/ui/schedules/")
    slack_texts = [p.json()["text"] for p in alert_receiver.posts("/slack")]
    assert any("Sync deadline missed" in t and SLOW in t for t in slack_texts)
    with engine.connect() as conn:
        rows = conn.execute(select(chart_sync_alert).order_by(chart_sync_alert.c.id)).all()
        failed_tries = conn.execute(select(chart_sync_execution).where(
            chart_sync_execution.c.chart_id == ids[FAILING])).all()
    deadline_rows = [r for r in rows if r.kind == "deadline"]
    assert [(r.chart_id, r.run_id) for r in deadline_rows] == [(ids[SLOW], missed["run_id"]),
                                                               (ids[READDED], readded["run_id"])]
    assert deadline_rows[0].channels == {"webhook": "sent", "slack": "sent"}

    # the catchup run passed its deadline (after its schedule was created): the callback ran, nothing sent
    assert catchup_outputs == [f"no deadline alert for {HISTORY}: catchup run: a newer period had ended "
                               "when the run was created"]
    assert not webhook_alerts(alert_receiver, "deadline", HISTORY)
    assert not [r for r in rows if r.chart_id == ids[HISTORY]]

    # removed and added again: the alert links the schedule as it is now
    assert new_schedule != old_schedule
    assert readded["schedule_id"] == new_schedule
    assert readded["links"]["schedule"] == f"{services.api_url}/chart-sync/ui/schedules/{new_schedule}"
    assert f"/schedules/{old_schedule}" not in readded["message"]

    # the failure: every try recorded, one alert after the last one
    assert sorted(r.try_number for r in failed_tries) == [1, 2, 3, 4]
    assert {r.status for r in failed_tries} == {"failed"}
    failure_rows = [r for r in rows if r.kind == "failure" and r.chart_id == ids[FAILING]]
    assert len(failure_rows) == 1 and failure_rows[0].run_id == failed["run_id"]
    assert "failed after 4 tries, no retries left" in failed["summary"]
    assert len(webhook_alerts(alert_receiver, "failure", FAILING)) == 1

    # the digest: overdue schedule, the failure and the miss of the last day
    assert digest_result["overdue"] == [FAILING]
    assert (digest_result["failures"], digest_result["deadline_misses"]) == (1, 2)
    digest = webhook_alerts(alert_receiver, "digest")[-1]
    assert f"({FAILING}, daily), never synced" in digest["message"]
    assert any("sync failed" in d and "period" in d for d in digest["details"])
    assert any("sync deadline missed" in d for d in digest["details"])
    assert webhook_alerts(alert_receiver, "overdue", FAILING)

    # retention: only the rows past 180 days went
    assert removed["retention_days"] == 180
    assert (removed["executions_deleted"], removed["alerts_deleted"]) == (1, 1)
    with engine.connect() as conn:
        assert [r.run_id for r in conn.execute(select(chart_sync_execution).where(
            chart_sync_execution.c.dag_id == "old"))] == ["r2"]
        messages = {r.message for r in conn.execute(select(chart_sync_alert))}
    assert "old 2" in messages and "old 200" not in messages
