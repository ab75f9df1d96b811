"""Airflow's state is the truth, on a real scheduler, dag-processor and api-server.

Two chart DAGs sync slowly (every ranking request of the emulator answers after 20 s), so their task
is running when the test acts on it from outside, and no task body records anything:

- (a) a task instance marked failed through Airflow's REST API: the api-server's listener records
  it: one failed execution row, one failure alert;
- (b) ``kill -9`` of the task process, try after try: each try shows as a failed row while the task
  retries (the scheduler's listener, or its reconciler where no hook ran), and no alert yet;
- (c) the last try killed while the chart DB is down (PostgreSQL refuses connections): nothing is
  recorded or sent; once the DB is back, the scheduler's reconciler records the try and raises the
  failure alert, once;
- (d) a run marked failed through the REST API while its task waits (its DAG is paused): Airflow
  skips the task, and the run's failure is what chart-sync records, once, with one alert.

What chart-sync shows is read where the pages read it (``chart_sync_execution``,
``chart_sync_alert``) and where stakeholders get it (the webhook channel).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import delete, select

from chartsync.store.tables import chart_sync_alert, chart_sync_execution
from stacks import alert_channel_env, make_airflow_env, start_airflow, stop_airflow, wait_for

pytestmark = pytest.mark.integration

MARKED = "spotify-top-200-us-daily"  # marked failed through the REST API while it runs
KILLED = "spotify-top-200-gb-daily"  # its task process killed with SIGKILL, every try
WAITING = "spotify-top-200-fr-daily"  # paused: its run waits, and is marked failed before its task runs
TASK = "sync_ranking"
TRIES = 4  # retries 3 (builders.defaults)


class Airflow:
    def __init__(self, services) -> None:
        self.url = f"{services.api_url}/api/v2"
        self.headers = {"Authorization": f"Bearer {services.token()}"}

    def get(self, path: str) -> dict:
        r = requests.get(f"{self.url}{path}", headers=self.headers, timeout=30)
        r.raise_for_status()
        return r.json()

    def patch(self, path: str, body: dict) -> requests.Response:
        return requests.patch(f"{self.url}{path}", json=body, headers=self.headers, timeout=60)

    def run_id(self, dag_id: str) -> str | None:
        try:
            runs = self.get(f"/dags/{dag_id}/dagRuns")["dag_runs"]
        except requests.HTTPError:
            return None
        return runs[0]["dag_run_id"] if runs else None

    def ti(self, dag_id: str, run_id: str) -> dict:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{TASK}")

    def parsed(self, dag_id: str) -> bool:
        return requests.get(f"{self.url}/dags/{dag_id}", headers=self.headers, timeout=30).status_code == 200

    def post(self, path: str, body: dict) -> dict:
        r = requests.post(f"{self.url}{path}", json=body, headers=self.headers, timeout=60)
        r.raise_for_status()
        return r.json()

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"]


def running_try(airflow: Airflow, dag_id: str, run_id: str, try_number: int) -> dict | None:
    ti = airflow.ti(dag_id, run_id)
    if ti["state"] == "running" and ti["try_number"] == try_number and ti["pid"]:
        return ti
    return None


def task_process(ti: dict, refresh=None) -> int:
    """The task process of a running try: the pid Airflow recorded, once it is the task runner (its
    title names the task instance id, ``airflow worker -- <id>``, as soon as it got its task).
    ``refresh`` reads the task instance again (None: it is no longer running) when that pid is gone."""
    current = dict(ti)

    def titled() -> bool:
        try:
            cmdline = Path(f"/proc/{current['pid']}/cmdline").read_bytes().decode(errors="replace")
        except FileNotFoundError:  # gone: read Airflow's pid again, if we can
            again = refresh() if refresh else None
            assert again is not None, f"the try of {ti['id']} ended before its task process was found"
            current.update(again)
            return False
        return f"airflow worker -- {ti['id']}" in cmdline

    wait_for(titled, 30, f"the task process {current['pid']} of {ti['id']}", interval=0.2)
    return current["pid"]


def executions(engine, dag_id: str, run_id: str) -> list:
    with engine.connect() as conn:
        return conn.execute(select(chart_sync_execution).where(
            chart_sync_execution.c.dag_id == dag_id, chart_sync_execution.c.run_id == run_id)
            .order_by(chart_sync_execution.c.try_number, chart_sync_execution.c.id)).all()


def rows_of_tries(engine, dag_id: str, run_id: str, count: int) -> list | None:
    """The run's execution rows once there are ``count`` of them."""
    rows = executions(engine, dag_id, run_id)
    return rows if len(rows) >= count else None


def failure_alerts(engine, dag_id: str) -> list:
    with engine.connect() as conn:
        return conn.execute(select(chart_sync_alert).where(
            chart_sync_alert.c.kind == "failure", chart_sync_alert.c.dag_id == dag_id)).all()


def webhook_failures(receiver, dag_id: str) -> list[dict]:
    return [p.json() for p in receiver.posts("/webhook")
            if p.json()["kind"] == "failure" and p.json()["dag_id"] == dag_id]


class ChartDb:
    """The chart DB on the test PostgreSQL server, which the test can take down and bring back."""

    def __init__(self, postgres, name: str) -> None:
        self.postgres, self.name = postgres, name

    def _admin(self, *statements: tuple[str, tuple]) -> None:
        import psycopg2

        pg = self.postgres
        admin = psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname="postgres")
        admin.autocommit = True
        try:
            with admin.cursor() as cur:
                for sql, params in statements:
                    cur.execute(sql, params)
        finally:
            admin.close()

    def down(self) -> None:
        """Refuse new connections and end the open ones: every chart DB access fails from now on."""
        self._admin((f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS false', ()),
                    ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                     "AND pid <> pg_backend_pid()", (self.name,)))

    def up(self) -> None:
        self._admin((f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS true', ()))


@pytest.fixture
def chart_db(postgres, tmp_path) -> ChartDb:
    db = ChartDb(postgres, postgres.create_database(f"failures_{tmp_path.name[-20:].lower().replace('-', '_')}"))
    yield db
    db.up()


@pytest.fixture
def af(tmp_path, emulator, postgres, chart_db, alert_receiver):
    # The metadata DB on PostgreSQL: marking a task instance failed while the scheduler, the
    # dag-processor and two tasks write is what locks SQLite ("database is locked").
    env = make_airflow_env(tmp_path, emulator.url, postgres.conn_json(chart_db.name), postgres.url(chart_db.name),
                           metadata_url=postgres.url(postgres.create_database("failures_airflow")))
    env.env.update(alert_channel_env(alert_receiver, channels="webhook"))
    env.env["CHARTSYNC_RETRY_DELAY_SECONDS"] = "1"  # retries after 1, 2 and 4 s
    env.env["CHARTSYNC_RECONCILE_SECONDS"] = "3"  # the scheduler's reconciler (production: 60 s)
    env.env["CHARTSYNC_DEADLINE_ALERTS"] = "off"  # no triggerer here
    env.chartsync("charts", "import", "--platform", "spotify")
    return env


def test_marked_killed_and_outage_failures_show_as_failed_with_one_alert(af, chart_db, emulator_admin,
                                                                          alert_receiver):
    emulator_admin.fault(kind="slow", path_contains="/ranking/", delay=20, count=None)
    for slug in (MARKED, KILLED):
        af.chartsync("schedules", "add", slug, "--no-history")  # active: the latest period runs at once
    af.chartsync("schedules", "add", WAITING, "--no-history", "--inactive")
    engine = af.engine()
    marked_dag, killed_dag, waiting_dag = (f"chart_sync__{slug}" for slug in (MARKED, KILLED, WAITING))
    started = time.monotonic()

    services = start_airflow(af)
    try:
        airflow = Airflow(services)
        marked_run = wait_for(lambda: airflow.run_id(marked_dag), 120, f"a run of {marked_dag}", interval=1)
        killed_run = wait_for(lambda: airflow.run_id(killed_dag), 60, f"a run of {killed_dag}", interval=1)

        # (a) marked failed by hand while the body waits for the API: the api-server's listener records it
        wait_for(lambda: running_try(airflow, marked_dag, marked_run, 1), 90, f"{marked_dag} running")
        r = airflow.patch(f"/dags/{marked_dag}/dagRuns/{marked_run}/taskInstances/{TASK}", {"new_state": "failed"})
        assert r.status_code == 200, r.text
        marked_rows = wait_for(lambda: executions(engine, marked_dag, marked_run), 30,
                               "the marked try in chart_sync_execution")

        # (d) a run marked failed while its task waits (its DAG is paused): Airflow skips the task; the
        # run's failure is recorded against the task's latest try (none ran: try 0)
        wait_for(lambda: airflow.parsed(waiting_dag), 60, f"{waiting_dag} parsed")
        waiting_run = airflow.post(f"/dags/{waiting_dag}/dagRuns", {"logical_date": None})["dag_run_id"]
        r = airflow.patch(f"/dags/{waiting_dag}/dagRuns/{waiting_run}", {"state": "failed"})
        assert r.status_code == 200, r.text
        waiting_rows = wait_for(lambda: executions(engine, waiting_dag, waiting_run), 30,
                                "the failed waiting run in chart_sync_execution")

        # (b) kill -9 of the task process, try after try: each shows as a failed row while it retries
        for try_number in range(1, TRIES):
            ti = wait_for(lambda n=try_number: running_try(airflow, killed_dag, killed_run, n), 90,
                          f"{killed_dag} try {try_number} running")
            os.kill(task_process(ti, lambda n=try_number: running_try(airflow, killed_dag, killed_run, n)),
                    signal.SIGKILL)
            rows = wait_for(lambda n=try_number: rows_of_tries(engine, killed_dag, killed_run, n), 60,
                            f"the killed try {try_number} in chart_sync_execution")
            assert [(r.try_number, r.status) for r in rows] == [(n, "failed") for n in range(1, try_number + 1)]
            # up_for_retry: the task instance's state, or failed: the try as Airflow archived it
            assert rows[-1].error.startswith(("up_for_retry in Airflow: ", "failed in Airflow: "))
            assert failure_alerts(engine, killed_dag) == []  # a retry follows: no alert yet

        # (c) the last try is killed while the chart DB is down: nothing can be recorded or sent then;
        # once the DB is back, the scheduler's reconciler records the try and raises the alert, once
        ti = wait_for(lambda: running_try(airflow, killed_dag, killed_run, TRIES), 90, f"{killed_dag} last try")
        chart_db.down()
        try:
            os.kill(task_process(ti, lambda: running_try(airflow, killed_dag, killed_run, TRIES)), signal.SIGKILL)
            assert wait_for(lambda: airflow.run_state(killed_dag, killed_run) == "failed" or None, 60,
                            f"{killed_dag} run failed")
            time.sleep(8)  # listeners and reconciler passes fail meanwhile
            assert webhook_failures(alert_receiver, killed_dag) == []
        finally:
            chart_db.up()
        engine.dispose()  # its connections were ended with the outage
        killed_rows = wait_for(lambda: rows_of_tries(engine, killed_dag, killed_run, TRIES), 30,
                               "the last try in chart_sync_execution after the outage")
        wait_for(lambda: failure_alerts(engine, killed_dag), 30, "the killed run's failure alert")
        assert wait_for(lambda: airflow.run_state(marked_dag, marked_run) == "failed" or None, 60,
                        f"{marked_dag} run failed")
        time.sleep(8)  # more reconciler passes and run events: nothing may be recorded twice
        assert airflow.ti(marked_dag, marked_run)["state"] == "failed"
        assert airflow.ti(killed_dag, killed_run)["try_number"] == TRIES
        airflow_ti_state = airflow.ti(waiting_dag, waiting_run)["state"]
    finally:
        stop_airflow(services)
    print(f"test_failures: {time.monotonic() - started:.0f} s with Airflow running")

    # (a) one failed row and one alert for the marked try, naming why
    assert executions(engine, marked_dag, marked_run) == marked_rows
    (marked_row,) = marked_rows
    assert (marked_row.try_number, marked_row.status) == (1, "failed")
    assert marked_row.period is not None
    assert "TaskInstance's state was manually set to `failed`" in marked_row.error
    (marked_alert,) = failure_alerts(engine, marked_dag)
    assert (marked_alert.run_id, marked_alert.task_id, marked_alert.try_number) == (marked_run, TASK, 1)
    assert marked_alert.channels == {"webhook": "sent"}
    assert "no retries left: TaskInstance's state was manually set to `failed`." in marked_alert.message
    assert "last recorded error" not in marked_alert.message
    assert len(webhook_failures(alert_receiver, marked_dag)) == 1

    # (d) the run failed by hand before its task ran: one failed row, one alert
    assert executions(engine, waiting_dag, waiting_run) == waiting_rows
    (waiting_row,) = waiting_rows
    assert (waiting_row.try_number, waiting_row.status) == (0, "failed")
    assert waiting_row.error == "failed in Airflow: the DAG run failed while sync_ranking was skipped"
    assert airflow_ti_state == "skipped"
    (waiting_alert,) = failure_alerts(engine, waiting_dag)
    assert (waiting_alert.run_id, waiting_alert.try_number) == (waiting_run, 0)
    assert len(webhook_failures(alert_receiver, waiting_dag)) == 1

    # (b, c) every killed try is a failed row, once; one alert, for the last try, sent after the outage
    assert executions(engine, killed_dag, killed_run) == killed_rows
    assert [(r.try_number, r.status) for r in killed_rows] == [(n, "failed") for n in range(1, TRIES + 1)]
    assert all(r.period == marked_row.period for r in killed_rows)  # both DAGs sync yesterday
    assert killed_rows[-1].error.startswith("failed in Airflow: ")
    (killed_alert,) = failure_alerts(engine, killed_dag)
    assert (killed_alert.run_id, killed_alert.try_number) == (killed_run, TRIES)
    assert f"failed after {TRIES} tries, no retries left: the task recorded no error" in killed_alert.message
    assert killed_alert.channels == {"webhook": "sent"}
    (sent,) = webhook_failures(alert_receiver, killed_dag)
    assert sent["run_id"] == killed_run and sent["chart"]["slug"] == KILLED
    # the CLI reconciles on demand (Airflow stopped: it reads the metadata DB itself); a lost row comes back
    with engine.begin() as conn:
        conn.execute(delete(chart_sync_execution).where(chart_sync_execution.c.id == killed_rows[1].id))
    out = af.chartsync("executions", "reconcile").stdout
    assert "6 failed tries in Airflow in the last 3 days: 1 recorded now, 0 failure alerts raised now" in out, out
    assert [r.try_number for r in executions(engine, killed_dag, killed_run)] == list(range(1, TRIES + 1))
    assert "0 recorded now, 0 failure alerts raised now" in af.chartsync("executions", "reconcile").stdout
    scheduler_log = (af.home / "logs" / "scheduler.out").read_text()
    assert f"{killed_dag} {killed_run} try {TRIES} failed (seen by reconciliation): row written, alert raised" \
        in scheduler_log
