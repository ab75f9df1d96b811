"""Data quality for real: one scheduler, dag-processor and api-server (LocalExecutor) for the
module, Airflow's metadata DB and the chart DB on PostgreSQL, the emulator as the API.

- the warehouse checks DAG (``chart_sync_quality_checks``): a clean warehouse passes; a ranking whose
  ``entry_count`` is wrong and a track without a name fail the two checks by name, and each raises a
  failure alert naming its check (the webhook channel and the ``chart_sync_alert`` feed);
- each hard check, through a chart DAG run whose API answers the emulator's corrupted ranking on every
  try: the sync fails, its log and execution rows name the check and the offending values, nothing is
  stored;
- a soft check: the ranking with a hole at position 57 is stored and its quality row flags it.

Each chart DAG syncs one period (``--no-history``: the latest) and is paused until its test starts.
The rule-by-rule SQL of the checks runs on both databases in ``test_each_check_finds_its_broken_rows``
(no Airflow there).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from urllib.parse import quote

import pytest
import requests
from sqlalchemy import create_engine, delete, insert, select, text, update

from chartsync import settings
from chartsync.builders.quality import CHECKS
from chartsync.store.tables import (
    chart,
    chart_ranking,
    chart_ranking_entry,
    chart_ranking_quality,
    chart_sync_alert,
    chart_sync_execution,
    track,
)
from stacks import BIN, AlertReceiver, alert_channel_env, make_airflow_env, start_airflow, stop_airflow, wait_for
from integration.test_failures import Airflow

pytestmark = pytest.mark.integration

TASK = "sync_ranking"
TRIES = 4  # retries 3 (builders.defaults): a hard check fails every try the corrupted ranking reaches
HARD = {  # variant (= the check's name) -> the chart whose API answers it
    "duplicate_positions": "spotify-top-200-us-daily",
    "duplicate_songs": "spotify-top-200-gb-daily",
    "position_out_of_range": "spotify-top-200-fr-daily",
}
SOFT_SLUG = "spotify-top-200-de-daily"  # its ranking lacks position 57: stored, flagged "gaps"
QUALITY_DAG = settings.QUALITY_CHECK_DAG_ID
BROKEN_CHECKS = {"entry_count_matches_entries", "tracks_have_names"}
AUTH = {"x-app-id": "soundcharts", "x-api-key": "soundcharts"}


def dag_id(slug: str) -> str:
    return f"{settings.DAG_ID_PREFIX}{slug}"


@dataclass
class Stack:
    af: object  # conftest.AirflowEnv
    airflow: Airflow
    receiver: AlertReceiver

    @property
    def engine(self):
        return self.af.engine()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, emulator, postgres) -> Iterator[Stack]:
    started = time.monotonic()
    base = tmp_path_factory.mktemp("quality")
    receiver = AlertReceiver()
    services = None
    try:
        name = postgres.create_database(f"quality_{base.name[-20:].lower().replace('-', '_')}")
        af = make_airflow_env(base, emulator.url, postgres.conn_json(name), postgres.url(name))
        af.env.update(alert_channel_env(receiver, channels="webhook"))
        af.env.update({
            "CHARTSYNC_RETRY_DELAY_SECONDS": "1",  # retries after 1, 2 and 4 s (production: 30 s doubling)
            "CHARTSYNC_RECONCILE_SECONDS": "3",  # the scheduler's reconciler (production: 60 s)
            "CHARTSYNC_DEADLINE_ALERTS": "off",  # no triggerer here
        })
        af.chartsync("charts", "import", "--platform", "spotify")
        adds = [subprocess.Popen([str(BIN / "chartsync"), "schedules", "add", slug, "--no-history", "--inactive"],
                                 env=af.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                for slug in (*HARD.values(), SOFT_SLUG)]  # paused: each test unpauses its own chart
        for add in adds:
            assert add.wait(timeout=120) == 0, add.stderr.read()
        services = start_airflow(af)
        airflow = Airflow(services)
        for dag in (QUALITY_DAG, *(dag_id(slug) for slug in (*HARD.values(), SOFT_SLUG))):
            wait_for(lambda d=dag: airflow.parsed(d), 120, f"{dag} parsed", interval=1)
        print(f"test_quality: Airflow up after {time.monotonic() - started:.0f} s")
        yield Stack(af, airflow, receiver)
    finally:
        if services is not None:
            stop_airflow(services)
        receiver.close()
        print(f"test_quality: {time.monotonic() - started:.0f} s in all")


# -- Airflow's side --------------------------------------------------------------------------------
def sync_chart(stack: Stack, slug: str, timeout: float = 180) -> dict:
    """Unpause the chart's DAG and wait for its one run (the latest period) to end."""
    r = stack.airflow.patch(f"/dags/{dag_id(slug)}", {"is_paused": False})
    assert r.status_code == 200, r.text

    def ended():
        runs = stack.airflow.get(f"/dags/{dag_id(slug)}/dagRuns")["dag_runs"]
        return runs[0] if runs and runs[0]["state"] in ("success", "failed") else None

    return wait_for(ended, timeout, f"the run of {dag_id(slug)}", interval=1)


def run_checks(stack: Stack) -> tuple[str, dict[str, dict]]:
    """Trigger the warehouse checks DAG; its run's state and task instances, once it has ended."""
    run_id = stack.airflow.post(f"/dags/{QUALITY_DAG}/dagRuns", {"logical_date": None})["dag_run_id"]
    state = wait_for(lambda: (s := stack.airflow.run_state(QUALITY_DAG, run_id)) in ("success", "failed") and s,
                     120, f"{QUALITY_DAG} run {run_id}", interval=1)
    tis = stack.airflow.get(f"/dags/{QUALITY_DAG}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return state, {ti["task_id"]: ti | {"dag_run_id": run_id} for ti in tis}


def task_log(stack: Stack, dag: str, ti: dict) -> str:
    r = requests.get(f"{stack.airflow.url}/dags/{dag}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}"
                     f"/logs/{ti['try_number']}", headers={**stack.airflow.headers, "Accept": "application/json"},
                     timeout=30)
    assert r.status_code == 200, r.text[:500]
    return json.dumps(r.json())


def webhook_failures(stack: Stack, dag: str) -> list[dict]:
    return [a for a in (p.json() for p in stack.receiver.posts("/webhook"))
            if a["kind"] == "failure" and a["dag_id"] == dag]


# -- chart-sync's side -------------------------------------------------------------------------------
def chart_id(engine, slug: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(chart.c.id).where(chart.c.slug == slug)).scalar_one()


def first_song_of(emulator, slug: str, period: date) -> str:
    r = requests.get(f"{emulator.url}/api/v2.14/chart/song/{slug}/ranking/{period.isoformat()}T00:00:00%2B00:00",
                     params={"limit": 1}, headers=AUTH, timeout=10)
    r.raise_for_status()
    return r.json()["items"][0]["song"]["uuid"]


# -- the warehouse checks DAG ----------------------------------------------------------------------------
def test_check_dag_passes_a_clean_warehouse_then_fails_and_alerts_naming_each_broken_check(stack):
    engine, now = stack.engine, datetime.now(UTC)
    with engine.begin() as conn:  # a small clean ranking of its own: one entry
        song = conn.execute(insert(track).values(song_uuid="quality-check-song", name="A Song", created_at=now,
                                                 updated_at=now)).inserted_primary_key[0]
        ranking = conn.execute(insert(chart_ranking).values(
            chart_id=chart_id(engine, SOFT_SLUG), period=date(2020, 1, 1), ranking_date="2020-01-01T00:00:00+00:00",
            entry_count=1, fetched_at=now)).inserted_primary_key[0]
        conn.execute(insert(chart_ranking_entry).values(ranking_id=ranking, position=1, trend="new", track_id=song))
    try:
        state, tis = run_checks(stack)
        assert state == "success", {t: ti["state"] for t, ti in tis.items()}
        assert set(tis) == {c.name for c in CHECKS}

        with engine.begin() as conn:  # break two rules
            conn.execute(update(chart_ranking).where(chart_ranking.c.id == ranking).values(entry_count=2))
            conn.execute(insert(track).values(song_uuid="quality-check-nameless", name="", created_at=now,
                                              updated_at=now))
        state, tis = run_checks(stack)
        assert state == "failed"
        failed = {t for t, ti in tis.items() if ti["state"] == "failed"}
        assert failed == BROKEN_CHECKS, {t: ti["state"] for t, ti in tis.items()}
        assert {ti["state"] for t, ti in tis.items() if t not in failed} == {"success"}
        for check in failed:
            assert tis[check]["try_number"] == 1  # a failed check is not retried
            log = task_log(stack, QUALITY_DAG, tis[check])
            assert f"Check: {check}" in log, log[-2000:]

        # one failure alert per failed check, naming it: on the webhook channel and in the feed
        run_id = tis[next(iter(failed))]["dag_run_id"]
        sent = wait_for(lambda: (a := [x for x in webhook_failures(stack, QUALITY_DAG) if x["run_id"] == run_id])
                        and len(a) >= 2 and a, 30, "two failure alerts of the checks DAG", interval=1)
        assert len(sent) == 2
        for check in failed:
            (alert,) = [a for a in sent if a["summary"].startswith(f"{check} failed")]
            assert check in alert["message"] and alert["links"]["dag_run"].endswith(quote(run_id, safe=""))
            rule = next(c for c in CHECKS if c.name == check)  # what broke and how much, before any SQL
            assert f'1 row of {rule.table} breaks the rule "{rule.rule}" (listed by: SELECT' in alert["summary"], \
                alert["summary"]
            print(f"test_quality: the alert of {check}:\n{alert['message']}")
        with engine.connect() as conn:
            feed = conn.execute(select(chart_sync_alert).where(chart_sync_alert.c.dag_id == QUALITY_DAG,
                                                               chart_sync_alert.c.run_id == run_id)).all()
        assert {(r.kind, r.task_id) for r in feed} == {("failure", check) for check in failed}
        assert all(r.task_id in r.message and r.channels == {"webhook": "sent"} for r in feed)
        r = requests.get(f"{stack.airflow.url.removesuffix('/api/v2')}/chart-sync/api/sync/alerts/",
                         params={"kind": "failure"}, headers=stack.airflow.headers, timeout=30)
        r.raise_for_status()  # the feed the alerts page and the REST API serve (services.alerts.list_alerts)
        listed = [a["message"] for a in r.json()["items"] if a["run_id"] == run_id]
        assert len(listed) == 2 and all(any(check in m for m in listed) for check in failed), listed
    finally:
        with engine.begin() as conn:
            conn.execute(delete(chart_ranking).where(chart_ranking.c.id == ranking))
            conn.execute(delete(track).where(track.c.song_uuid.in_(("quality-check-song", "quality-check-nameless"))))


# -- hard checks through a chart DAG run ------------------------------------------------------------------
@pytest.mark.parametrize("variant", list(HARD))
def test_hard_check_fails_the_sync_naming_check_and_values_and_stores_nothing(stack, emulator, emulator_admin,
                                                                              variant):
    slug = HARD[variant]
    emulator_admin.fault(kind="malformed", variant=variant, path_contains=f"/{slug}/ranking/", count=TRIES)
    run = sync_chart(stack, slug)
    assert run["state"] == "failed"
    period = datetime.fromisoformat(run["data_interval_start"]).date()
    offending = {"duplicate_positions": "position 1 ", "position_out_of_range": "201",
                 "duplicate_songs": first_song_of(emulator, slug, period)}[variant]

    ti = stack.airflow.ti(dag_id(slug), run["dag_run_id"]) | {"dag_run_id": run["dag_run_id"]}
    assert (ti["state"], ti["try_number"]) == ("failed", TRIES)
    log = task_log(stack, dag_id(slug), ti)
    assert f"check {variant}" in log and offending in log, log[-3000:]
    engine = stack.engine
    with engine.connect() as conn:
        rows = conn.execute(select(chart_sync_execution).where(chart_sync_execution.c.dag_id == dag_id(slug))
                            .order_by(chart_sync_execution.c.try_number)).all()
        stored = conn.execute(select(chart_ranking).where(chart_ranking.c.chart_id == chart_id(engine, slug))).all()
    assert [r.try_number for r in rows] == list(range(1, TRIES + 1)), [(r.try_number, r.status) for r in rows]
    for r in rows:
        assert (r.status, r.period) == ("failed", period)
        assert f"check {variant}" in r.error and offending in r.error, r.error
    assert stored == []  # nothing of the rejected ranking, for that period or any other
    (alert,) = wait_for(lambda: webhook_failures(stack, dag_id(slug)), 30, "the sync's failure alert", interval=1)
    assert variant in alert["message"] and alert["period"] == period.isoformat()


# -- a soft check: stored and flagged ----------------------------------------------------------------------
def test_soft_check_stores_the_ranking_and_flags_it(stack, emulator_admin):
    emulator_admin.fault(kind="malformed", variant="gap", path_contains=f"/{SOFT_SLUG}/ranking/", count=1)
    run = sync_chart(stack, SOFT_SLUG)
    assert run["state"] == "success"
    period = datetime.fromisoformat(run["data_interval_start"]).date()
    engine = stack.engine
    with engine.connect() as conn:
        ranking = conn.execute(select(chart_ranking).where(chart_ranking.c.chart_id == chart_id(engine, SOFT_SLUG),
                                                           chart_ranking.c.period == period)).one()
        positions = conn.execute(select(chart_ranking_entry.c.position)
                                 .where(chart_ranking_entry.c.ranking_id == ranking.id)).scalars().all()
        quality = conn.execute(select(chart_ranking_quality)
                               .where(chart_ranking_quality.c.ranking_id == ranking.id)).one()
    assert ranking.entry_count == 199 and sorted(positions) == [*range(1, 57), *range(58, 201)]
    assert quality.flagged and "gaps" in quality.flags, quality
    assert (quality.entry_count, quality.missing_positions, quality.period) == (199, 1, period)
    ti = stack.airflow.ti(dag_id(SOFT_SLUG), run["dag_run_id"]) | {"dag_run_id": run["dag_run_id"]}
    assert "gaps" in task_log(stack, dag_id(SOFT_SLUG), ti)  # the sync's log says the ranking was flagged


# -- the checks' SQL on both databases, rule by rule (no Airflow) ----------------------------------------------
SCHEMA = (  # the columns the checks read, without the constraints that would refuse the broken rows
    "CREATE TABLE chart (id INTEGER PRIMARY KEY)",
    "CREATE TABLE chart_ranking (id INTEGER PRIMARY KEY, chart_id INTEGER, period DATE, entry_count INTEGER)",
    "CREATE TABLE track (id INTEGER PRIMARY KEY, name VARCHAR(500))",
    "CREATE TABLE chart_ranking_entry (id INTEGER PRIMARY KEY, ranking_id INTEGER, track_id INTEGER)",
)
CLEAN = (
    "INSERT INTO chart VALUES (1), (2)",
    "INSERT INTO chart_ranking VALUES (1, 1, '2026-01-01', 2), (2, 1, '2026-01-02', 1), (3, 2, '2026-01-01', 0)",
    "INSERT INTO track VALUES (1, 'One'), (2, 'Two')",
    "INSERT INTO chart_ranking_entry VALUES (1, 1, 1), (2, 1, 2), (3, 2, 2)",
)
BREAKS = {  # check -> the rows that break it (and no other check)
    "entries_reference_rankings": "INSERT INTO chart_ranking_entry VALUES (9, 99, 1)",
    "entries_reference_tracks": "UPDATE chart_ranking_entry SET track_id = 99 WHERE id = 3",
    "rankings_reference_charts": "INSERT INTO chart_ranking VALUES (9, 99, '2026-01-01', 0)",
    "one_ranking_per_chart_period": "INSERT INTO chart_ranking VALUES (9, 1, '2026-01-02', 0)",
    "entry_count_matches_entries": "UPDATE chart_ranking SET entry_count = 3 WHERE id = 1",
    "tracks_have_names": "INSERT INTO track VALUES (9, '  ')",
}


@pytest.fixture(params=["sqlite", "postgres"])
def bare_db(request, tmp_path, monkeypatch):
    """An empty database with SCHEMA, and the chart_db connection pointing at it."""
    if request.param == "sqlite":
        path = tmp_path / "bare.db"
        url, conn = f"sqlite:///{path}", {"conn_type": "sqlite", "host": str(path)}
    else:
        pg = request.getfixturevalue("postgres")
        name = pg.create_database(f"bare_{tmp_path.name[-20:].lower().replace('-', '_')}")
        url, conn = pg.url(name), json.loads(pg.conn_json(name))
    monkeypatch.setenv("AIRFLOW_CONN_CHART_DB", json.dumps(conn))
    engine = create_engine(url)
    with engine.begin() as c:
        for statement in SCHEMA:
            c.execute(text(statement))
    yield engine
    engine.dispose()


BROKEN_ROWS = {"one_ranking_per_chart_period": "2 rows of chart_ranking break"}  # both rankings of the period


def failed_checks() -> set[str]:
    """The checks that fail; each failure says its rule, how many rows break it and the query listing them."""
    from airflow.sdk.exceptions import AirflowFailException

    failed = set()
    for check in CHECKS:
        try:
            check.operator().execute({})
        except AirflowFailException as exc:
            broken = BROKEN_ROWS.get(check.name, f"1 row of {check.table} breaks")
            assert str(exc) == (f'{broken} the rule "{check.rule}" '
                                f"(listed by: SELECT * FROM {check.table} WHERE {check.broken})"), str(exc)
            failed.add(check.name)
    return failed


def test_each_check_finds_its_broken_rows(bare_db):
    assert set(BREAKS) == {c.name for c in CHECKS}
    assert failed_checks() == set()  # an empty warehouse passes: the operator's MIN of no rows is no failure
    with bare_db.begin() as c:
        for statement in CLEAN:
            c.execute(text(statement))
    assert failed_checks() == set()
    for check, statement in BREAKS.items():
        with bare_db.begin() as c:
            c.execute(text(statement))
        assert failed_checks() == {check}, statement
        with bare_db.begin() as c:  # the clean rows again
            for table in ("chart_ranking_entry", "track", "chart_ranking", "chart"):
                c.execute(text(f"DELETE FROM {table}"))
            for clean in CLEAN:
                c.execute(text(clean))
