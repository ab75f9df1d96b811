"""chart-sync on Airflow's CeleryExecutor, for real: PostgreSQL (metadata DB and chart DB), Redis as the
broker, the api-server, scheduler, dag-processor and triggerer in one AIRFLOW_HOME, and two Celery
workers, each a "machine" of its own: its own AIRFLOW_HOME, log folder and schedule snapshot, its own
loopback address as hostname, where its own log server (Airflow's) answers the api-server.

Five charts catch up, one gap is healed by a backfill, one audience run refreshes a song: every period
is stored exactly once, both workers ran sync tasks, and the api-server reads the logs of both."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import delete, func, select, update

from chartsync.store.tables import chart, chart_ranking, chart_ranking_entry, chart_sync_schedule, track
from stacks import BIN, free_port, make_airflow_env, start_airflow, stop_airflow, wait_for

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
CHARTS = ("spotify-top-200-global-daily", "spotify-top-200-us-daily", "spotify-top-200-gb-daily",
          "spotify-top-200-fr-daily", "spotify-top-200-de-daily")
DAYS = 6  # periods per chart: 30 sync runs over two workers
WORKERS = {"worker-a": "127.0.0.2", "worker-b": "127.0.0.3"}
SHARED_SECRETS = {  # what every machine of one deployment shares; nothing else is shared
    "AIRFLOW__API__SECRET_KEY": "celery-topology-test-secret-key",
    "AIRFLOW__API_AUTH__JWT_SECRET": "celery-topology-test-jwt-secret",
}


@pytest.fixture
def redis_url(tmp_path):
    """Debian's redis-server on a free loopback port, nothing persisted."""
    server = shutil.which("redis-server")
    assert server, "redis-server is not installed (.ci/run installs Debian's redis-server)"
    port = free_port()
    proc = subprocess.Popen([server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: subprocess.run([shutil.which("redis-cli") or "redis-cli", "-p", str(port), "ping"],
                                    capture_output=True, text=True).stdout.strip() == "PONG", 30, "redis-server")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def af(tmp_path, emulator, postgres, redis_url):
    chart_db = postgres.create_database(f"celery_{tmp_path.name[-16:].lower().replace('-', '_')}")
    env = make_airflow_env(tmp_path / "main", emulator.url, postgres.conn_json(chart_db), postgres.url(chart_db))
    env.env.update(SHARED_SECRETS)
    env.env.update({
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": redis_url,
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    })
    return env


def start_worker(af, base: Path, name: str, address: str) -> tuple[subprocess.Popen, subprocess.Popen]:
    """A Celery worker as a machine of its own, and Airflow's log server bound to its address."""
    home = base / name
    (home / "logs").mkdir(parents=True)
    env = {**af.env, "AIRFLOW_HOME": str(home), "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
           "CHARTSYNC_SCHEDULE_SNAPSHOT": str(home / "schedules.json"),
           "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_address.address",
           "CHARTSYNC_TEST_WORKER_ADDRESS": address,
           "PYTHONPATH": f"{af.env['PYTHONPATH']}{os.pathsep}{HERE}"}
    out = open(home / "worker.out", "w")
    worker = subprocess.Popen([str(BIN / "airflow"), "celery", "worker", "--concurrency", "2", "--skip-serve-logs",
                               "--celery-hostname", f"{name}@%h"], env=env, stdout=out, stderr=subprocess.STDOUT,
                              start_new_session=True)
    log_server = subprocess.Popen(
        [sys.executable, "-c", "import sys, uvicorn; uvicorn.run('airflow.utils.serve_logs.log_server:get_app', "
         "factory=True, host=sys.argv[1], port=int(sys.argv[2]), log_level='warning')",
         address, env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]],
        env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return worker, log_server


class Api:
    def __init__(self, services) -> None:
        self.url = f"{services.api_url}/api/v2"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {services.token()}"

    def get(self, path: str, **params):
        r = self.session.get(self.url + path, params=params, timeout=30)
        return r.json() if r.status_code == 200 else None

    def runs(self, dag_id: str) -> list[dict]:
        return (self.get(f"/dags/{dag_id}/dagRuns", limit=100) or {}).get("dag_runs", [])

    def sync_tis(self) -> list[dict]:
        found = []
        for slug in CHARTS:
            found += (self.get(f"/dags/chart_sync__{slug}/dagRuns/~/taskInstances", limit=100) or {}).get(
                "task_instances", [])
        return found


def test_five_charts_a_heal_and_an_audience_run_over_two_celery_workers(af, tmp_path, emulator):
    af.chartsync("charts", "import", "--platform", "spotify")
    for slug in CHARTS:
        af.chartsync("schedules", "add", slug)
    engine = af.engine()
    start = date.today() - timedelta(days=DAYS)
    window = [start + timedelta(days=i) for i in range(DAYS)]
    with engine.begin() as conn:  # a short history window keeps the test quick
        conn.execute(update(chart_sync_schedule).values(history_start=start))

    services = start_airflow(af, ("api-server", "scheduler", "dag-processor", "triggerer"))
    workers = [start_worker(af, tmp_path / "workers", name, address) for name, address in WORKERS.items()]
    try:
        api = Api(services)

        def caught_up() -> bool:
            runs = {slug: api.runs(f"chart_sync__{slug}") for slug in CHARTS}
            failed = [r["dag_run_id"] for rs in runs.values() for r in rs if r["state"] == "failed"]
            assert not failed, f"failed runs: {failed}; see {tmp_path}"
            return all(len(rs) >= DAYS and all(r["state"] == "success" for r in rs) for rs in runs.values())

        wait_for(caught_up, 420, f"the catchup of {len(CHARTS)} charts over two workers", interval=3)
        assert stored(engine) == {(slug, d): 1 for slug in CHARTS for d in window}

        # heal: one chart's period loses its ranking and its run; the heal's backfill re-syncs it on a worker
        healed, day = CHARTS[0], window[2]
        with engine.begin() as conn:
            ids = select(chart_ranking.c.id).join(chart, chart.c.id == chart_ranking.c.chart_id).where(
                chart.c.slug == healed, chart_ranking.c.period == day)
            conn.execute(delete(chart_ranking_entry).where(chart_ranking_entry.c.ranking_id.in_(ids)))
            conn.execute(delete(chart_ranking).where(chart_ranking.c.id.in_(ids)))
        run = next(r for r in api.runs(f"chart_sync__{healed}") if r["logical_date"][:10] == day.isoformat())
        r = api.session.delete(f"{api.url}/dags/chart_sync__{healed}/dagRuns/{run['dag_run_id']}", timeout=30)
        assert r.status_code == 204, r.text
        out = af.chartsync("gaps", "heal", healed).stdout
        assert f"{healed}: created: " in out, out
        wait_for(lambda: stored(engine).get((healed, day)) == 1 and all(
            r["state"] == "success" for r in api.runs(f"chart_sync__{healed}")), 240, "the heal's backfill run")
        backfilled = [r for r in api.runs(f"chart_sync__{healed}") if r["run_type"] == "backfill"]
        assert [r["logical_date"][:10] for r in backfilled] == [day.isoformat()]

        # one audience run, for a song the catchup stored
        with engine.connect() as conn:
            uuid = conn.execute(select(track.c.song_uuid).order_by(track.c.id).limit(1)).scalar_one()
        assert "triggered chart_sync_audience run" in af.chartsync("audience", "refresh", uuid).stdout
        audience = wait_for(lambda: [r for r in api.runs("chart_sync_audience") if r["state"] in ("success", "failed")],
                            180, "the audience run")
        assert [r["state"] for r in audience] == ["success"]

        # both workers ran sync tasks; the api-server reads each one's logs from that worker
        tis = api.sync_tis()
        by_host = {}
        for ti in tis:
            if ti["state"] == "success":
                by_host.setdefault(ti["hostname"], ti)
        assert set(by_host) == set(WORKERS.values()), {ti["hostname"] for ti in tis}
        for address, ti in by_host.items():
            path = (f"/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}"
                    f"/logs/{ti['try_number']}")
            log = api.session.get(api.url + path, headers={"Accept": "application/json"}, timeout=30)
            assert log.status_code == 200, log.text[:500]
            text = json.dumps(log.json())
            assert "Syncing " in text and "API requests=" in text, text[:2000]  # the sync's own lines
            assert "Could not read served logs" not in text and "Failed to fetch" not in text, text[:2000]
        # each worker's log folder holds its own tasks' logs only; the api-server's home holds none
        for name, address in WORKERS.items():
            logs = list((tmp_path / "workers" / name / "logs").rglob("attempt=*.log"))
            assert logs, f"{name} wrote no task log"
        assert not list((af.home / "logs").rglob("dag_id=chart_sync__*/**/attempt=*.log"))
    finally:
        for worker, log_server in workers:
            for proc in (worker, log_server):
                try:
                    os.killpg(proc.pid, 15)
                except ProcessLookupError:
                    pass
        for worker, log_server in workers:
            for proc in (worker, log_server):
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
        stop_airflow(services)
    assert stored(engine) == {(slug, d): 1 for slug in CHARTS for d in window}


def stored(engine) -> dict[tuple[str, date], int]:
    """How many rankings each (chart, period) has."""
    with engine.connect() as conn:
        rows = conn.execute(select(chart.c.slug, chart_ranking.c.period, func.count())
                            .join(chart, chart.c.id == chart_ranking.c.chart_id)
                            .group_by(chart.c.slug, chart_ranking.c.period)).all()
    return {(slug, period): n for slug, period, n in rows}
