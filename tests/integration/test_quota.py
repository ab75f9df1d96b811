"""Waiting for the Soundcharts quota, for real: a scheduler, dag-processor, api-server and triggerer against
the emulator's quota mode, and ``airflow dags test`` (which runs the trigger inline).

The stack story: a daily chart's catchup runs the quota down below the reserve part-way; its history defers
(no worker, no failed try) while a second chart's newest period still syncs, and a newest period that meets
the quota used up (a quota 429) defers too. Once the emulator's quota is back, the triggers (rechecking the
free usage endpoint every 2 s) resume every waiting task: every period stored once, no try failed or
retried, and the episode raised exactly one "exhausted" and one "restored" alert.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
import requests
from sqlalchemy import func, select, update

from chartsync.core.alerts import QUOTA_EXHAUSTED, QUOTA_RESTORED
from chartsync.core.outcomes import SUCCESS
from chartsync.store.tables import chart, chart_ranking, chart_sync_alert, chart_sync_execution, chart_sync_schedule
from stacks import start_airflow, stop_airflow, wait_for

pytestmark = pytest.mark.integration

CATCHUP = "deezer-top-100-fr-daily"  # 100 entries: one call a period
FRESH = "deezer-top-100-gb-daily"
HISTORY_DAYS = 30
# rechecks a few seconds apart, longer than a busy scheduler's loop (the trigger's first reading waits one)
QUOTA_ENV = {"CHARTSYNC_QUOTA_RESERVE": "10", "CHARTSYNC_QUOTA_RECHECK_SECONDS": "8",
             "CHARTSYNC_DEADLINE_ALERTS": "off"}


def dag_id(slug: str) -> str:
    return f"chart_sync__{slug}"


class Api:
    def __init__(self, services):
        self.base = services.api_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {services.token()}"

    def get(self, path: str, **params) -> dict:
        r = self.session.get(self.base + path, params=params, timeout=60)
        if r.status_code == 404:
            return {}
        assert r.status_code == 200, (path, r.status_code, r.text[:500])
        return r.json()

    def runs(self, slug: str) -> list[dict]:
        return self.get(f"/api/v2/dags/{dag_id(slug)}/dagRuns", limit=100).get("dag_runs", [])

    def task_instances(self, slug: str) -> list[dict]:
        return self.get(f"/api/v2/dags/{dag_id(slug)}/dagRuns/~/taskInstances", limit=100).get("task_instances", [])


def set_quota(emulator, remaining: int | None) -> None:
    requests.post(f"{emulator.url}/__admin/quota", json={"remaining": remaining}, timeout=5).raise_for_status()


def emulator_remaining(emulator) -> int:
    return requests.get(f"{emulator.url}/__admin/quota", timeout=5).json()["remaining"]


def usage_reads(emulator) -> int:
    by_path = requests.get(f"{emulator.url}/__admin/requests", timeout=5).json()["by_path"]
    return sum(n for path, n in by_path.items() if path.rstrip("/").endswith("/team/usage"))


def quota_alerts(engine) -> list[str]:
    a = chart_sync_alert.c
    with engine.connect() as conn:
        return list(conn.execute(select(a.kind).where(a.kind.in_((QUOTA_EXHAUSTED, QUOTA_RESTORED)))
                                 .order_by(a.id)).scalars())


def stored(engine, slug: str) -> dict[date, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(chart_ranking.c.period, func.count()).join(chart).where(chart.c.slug == slug)
                                 .group_by(chart_ranking.c.period)).all())


@pytest.fixture
def quota_env(airflow_postgres, emulator, emulator_admin):
    airflow_postgres.env.update(QUOTA_ENV)
    yield airflow_postgres
    set_quota(emulator, None)


def test_history_waits_for_the_quota_the_newest_goes_on_and_all_completes_once_it_is_back(quota_env, emulator):
    af = quota_env
    af.chartsync("charts", "import", "--platform", "deezer")
    # --no-metadata: the track metadata DAG would spend the quota too (one call a new song)
    af.chartsync("schedules", "add", CATCHUP, "--frequency", "daily", "--no-metadata")
    engine = af.engine()
    today = datetime.now(UTC).date()
    start = today - timedelta(days=HISTORY_DAYS)
    with engine.begin() as conn:  # a month of history keeps the test short
        conn.execute(update(chart_sync_schedule).values(history_start=start))
    expected = [start + timedelta(days=i) for i in range(HISTORY_DAYS)]
    # enough for the newest period and some history: the reserve (10) is reached part-way through the catchup
    set_quota(emulator, 20)

    services = start_airflow(af, components=("api-server", "scheduler", "dag-processor", "triggerer"))
    try:
        api = Api(services)

        def history_waits():
            tis = api.task_instances(CATCHUP)
            assert not [t for t in tis if t["state"] in ("failed", "up_for_retry")], tis
            running = [t for t in tis if t["state"] not in ("success", "deferred", "skipped")]
            deferred = [t for t in tis if t["state"] == "deferred"]
            return deferred and not running and deferred

        waiting = wait_for(history_waits, 300, "the catchup's history to defer below the reserve", interval=2)
        synced_before = stored(engine, CATCHUP)
        assert max(expected) in synced_before  # sync_immediately: the newest period went first
        assert 0 < len(synced_before) < HISTORY_DAYS  # part-way
        assert quota_alerts(engine) == [QUOTA_EXHAUSTED]
        with engine.connect() as conn:
            statuses = {s for (s,) in conn.execute(select(chart_sync_execution.c.status))}
        assert statuses == {SUCCESS, "waiting_for_quota"}  # the waiting periods show as waiting, not failed

        # below the reserve, a chart's newest period still syncs while the history waits
        af.chartsync("schedules", "add", FRESH, "--frequency", "daily", "--no-history", "--no-metadata")
        wait_for(lambda: (today - timedelta(days=1)) in stored(engine, FRESH), 180, "the newest period of a new chart")
        assert stored(engine, CATCHUP) == synced_before
        assert {t["state"] for t in api.task_instances(CATCHUP)} >= {"deferred"}

        # the quota used up: a newest period meets a quota 429 and waits too (no new alert: the same episode)
        set_quota(emulator, 0)
        # no logical date: "sync now", the newest published period (the scheduled run holds its logical date)
        r = api.session.post(f"{api.base}/api/v2/dags/{dag_id(FRESH)}/dagRuns", timeout=60,
                             json={"dag_run_id": "manual__quota", "logical_date": None})
        assert r.status_code == 200, r.text
        wait_for(lambda: any(t["state"] == "deferred" for t in api.task_instances(FRESH)), 180,
                 "the newest period to defer on the used-up quota")
        assert quota_alerts(engine) == [QUOTA_EXHAUSTED]

        reads = usage_reads(emulator)
        wait_for(lambda: usage_reads(emulator) >= reads + 2, 60, "the triggers to recheck the quota")
        set_quota(emulator, 100_000)

        def complete():
            runs = api.runs(CATCHUP) + api.runs(FRESH)
            assert not [r for r in runs if r["state"] == "failed"], "Airflow shows a failed run"
            return len(api.runs(CATCHUP)) >= HISTORY_DAYS and all(r["state"] == "success" for r in runs)

        wait_for(complete, 300, "every waiting run to resume and succeed", interval=3)
        tis = api.task_instances(CATCHUP) + api.task_instances(FRESH)
        # what the last response said is left, as the REST API and the CLI report it
        left = emulator_remaining(emulator)
        assert api.get("/chart-sync/api/quota/")["remaining"] == left
        assert json.loads(af.chartsync("quota", "-o", "json").stdout)[0]["remaining"] == left
    finally:
        stop_airflow(services)

    assert len(waiting) >= 1
    assert {t["state"] for t in tis} == {"success"}
    assert {t["try_number"] for t in tis} == {1}  # waiting spent no try
    catchup = stored(engine, CATCHUP)
    assert sorted(catchup) == expected and set(catchup.values()) == {1}  # every period stored exactly once
    assert stored(engine, FRESH) == {today - timedelta(days=1): 1}
    with engine.connect() as conn:
        rows = conn.execute(select(chart_sync_execution.c.dag_id, chart_sync_execution.c.run_id,
                                   chart_sync_execution.c.try_number, chart_sync_execution.c.status)).all()
    assert {r.status for r in rows} == {SUCCESS}  # no failed try, and no try left waiting
    tries = {(r.dag_id, r.run_id, r.try_number) for r in rows}
    assert len(rows) == len(tries) + 1  # one row a try (+ the newest period the first catchup run pulled first)
    assert quota_alerts(engine) == [QUOTA_EXHAUSTED, QUOTA_RESTORED]


def test_airflow_dags_test_completes_a_period_once_the_quota_returns(airflow_postgres, emulator, emulator_admin):
    af = airflow_postgres
    af.env.update(QUOTA_ENV | {"CHARTSYNC_QUOTA_RECHECK_SECONDS": "1"})
    slug = "spotify-top-200-global-daily"
    af.chartsync("charts", "import", "--platform", "spotify")
    af.chartsync("schedules", "add", slug, "--no-metadata")
    period = date.today() - timedelta(days=3)
    set_quota(emulator, 0)  # the ranking's calls get the quota 429 until the thread below gives it back
    reads = usage_reads(emulator)

    def give_back():  # once the inline trigger has rechecked twice
        wait_for(lambda: usage_reads(emulator) >= reads + 2, 120, "the trigger to recheck the quota")
        set_quota(emulator, 4_323)  # the resumed sync's two pages of 100 leave 4,321

    giver = threading.Thread(target=give_back, daemon=True)
    giver.start()
    try:
        af.airflow("dags", "test", dag_id(slug), period.isoformat())
    finally:
        giver.join(timeout=130)
        set_quota(emulator, None)
    engine = af.engine()
    with engine.connect() as conn:
        executions = conn.execute(select(chart_sync_execution)).all()
        stored_periods = list(conn.execute(select(chart_ranking.c.period)).scalars())
    assert stored_periods == [period]
    assert [(e.status, e.period, e.try_number) for e in executions] == [(SUCCESS, period, 1)]
    assert quota_alerts(engine) == [QUOTA_EXHAUSTED, QUOTA_RESTORED]
    # the x-quota-remaining of the sync's last response, as `chartsync quota` reports it
    assert json.loads(af.chartsync("quota", "-o", "json").stdout)[0]["remaining"] == 4_321
