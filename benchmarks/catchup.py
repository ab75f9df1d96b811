"""What a chart DAG's catchup costs over Airflow's own floor.

Runs, each on a fresh real Airflow (scheduler, dag-processor, triggerer, api-server; LocalExecutor,
sized as ``make run`` sizes it; metadata DB and chart DB on PostgreSQL):

1. a no-op DAG with a chart DAG's timetable (daily), start, catchup, max_active_runs, retries and
   pool: Airflow's cost of N runs, nothing of chart-sync's;
2. a chart DAG syncing the same N daily periods from the Soundcharts emulator, with everything the
   product does around it (the asset events, the track-metadata runs they trigger, listeners).

The time of each is Airflow's own: from the first run's start to the end of the last run (of the
chart DAG and of the track-metadata DAG), as the REST API reports them; start-up is not counted.
It prints both, the ratio (target <= 1.10x), and where the chart DAG's extra time went (task
durations, metadata runs), then exits 1 when the target is missed.

    .venv/bin/python benchmarks/catchup.py [--periods 365] [--chart spotify-top-200-global-daily]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "tests")]

import requests  # noqa: E402
from sqlalchemy import func, select, update  # noqa: E402

from chartsync import demo, settings  # noqa: E402
from chartsync.store.tables import chart_ranking, chart_sync_schedule  # noqa: E402
from stacks import AirflowEnv, make_airflow_env, session_postgres, start_airflow, stop_airflow  # noqa: E402
from soundcharts_emulator.server import start_server  # noqa: E402

TARGET = 1.10
NOOP_DAG_ID = "noop_catchup"
NOOP_DAG = """
from datetime import datetime, timedelta, UTC
from airflow.sdk import DAG, CronDataIntervalTimetable, task

with DAG(dag_id={dag_id!r}, schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
         start_date=datetime({start.year}, {start.month}, {start.day}, tzinfo=UTC), catchup=True,
         max_active_runs={max_active_runs}, is_paused_upon_creation=False,
         default_args={{"retries": {retries}, "retry_delay": timedelta(seconds=30), "pool": {pool!r}}}):

    @task(task_id="sync_ranking")
    def sync_ranking():
        return None

    sync_ranking()
"""


@dataclass
class Side:
    name: str
    runs: int = 0
    seconds: float = 0.0
    task_seconds: list[float] | None = None
    run_seconds: list[float] | None = None  # each run's start to end
    metadata_runs: int = 0


class Api:
    def __init__(self, services) -> None:
        self.url = f"{services.api_url}/api/v2"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {services.token()}"

    def all(self, path: str, key: str) -> list[dict]:
        found, offset = [], 0
        while True:
            r = self.session.get(self.url + path, params={"limit": 100, "offset": offset}, timeout=60)
            if r.status_code == 404:
                return []
            r.raise_for_status()
            page = r.json()[key]
            found += page
            if len(page) < 100:
                return found
            offset += 100


def when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def run_side(af: AirflowEnv, dag_ids: list[str], periods: int, log, timeout: float) -> Side:
    services = start_airflow(af, ("api-server", "scheduler", "dag-processor", "triggerer"))
    try:
        api = Api(services)
        started = time.monotonic()
        while True:
            runs = api.all(f"/dags/{dag_ids[0]}/dagRuns", "dag_runs")
            done = [r for r in runs if r["state"] in ("success", "failed")]
            others = [r for d in dag_ids[1:] for r in api.all(f"/dags/{d}/dagRuns", "dag_runs")]
            busy = [r for r in others if r["state"] in ("queued", "running")]
            log(f"  [{time.monotonic() - started:5.0f} s] {dag_ids[0]}: {len(done)}/{periods} runs ended"
                + (f", {len(others)} metadata runs ({len(busy)} active)" if dag_ids[1:] else ""))
            if len(done) >= periods and not busy and len(runs) == len(done):
                break
            if time.monotonic() - started > timeout:
                raise SystemExit(f"catchup: {dag_ids[0]} did not finish within {timeout:.0f} s")
            time.sleep(10)
        failed = [r["dag_run_id"] for r in done if r["state"] != "success"]
        if failed:
            raise SystemExit(f"catchup: {dag_ids[0]} runs failed: {failed[:5]}; logs in {af.home / 'logs'}")
        everything = runs + others
        first = min(when(r["start_date"]) for r in runs)
        last = max(when(r["end_date"]) for r in everything)
        tis = api.all(f"/dags/{dag_ids[0]}/dagRuns/~/taskInstances", "task_instances")
        return Side(dag_ids[0], len(runs), (last - first).total_seconds(),
                    [t["duration"] for t in tis if t.get("duration") is not None],
                    [(when(r["end_date"]) - when(r["start_date"])).total_seconds() for r in runs], len(others))
    finally:
        stop_airflow(services)


def noop_side(base: Path, emulator_url: str, start: date, periods: int, log, timeout: float) -> Side:
    dags = base / "noop-dags"
    dags.mkdir(parents=True)
    (dags / "noop.py").write_text(textwrap.dedent(NOOP_DAG.format(
        dag_id=NOOP_DAG_ID, start=start, max_active_runs=settings.CHART_DAG_MAX_ACTIVE_RUNS,
        retries=settings.RETRIES, pool=settings.SOUNDCHARTS_POOL)))
    pg = session_postgres()
    chart_db = pg.create_database("catchup_noop_chart")
    af = make_airflow_env(base / "noop", emulator_url, pg.conn_json(chart_db), pg.url(chart_db))
    af.env = demo.airflow_env(af.env, demo.cpu_count())
    af.env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    log(f"no-op DAG: {periods} daily runs")
    return run_side(af, [NOOP_DAG_ID], periods, log, timeout)


def chart_side(base: Path, emulator_url: str, slug: str, start: date, periods: int, log, timeout: float) -> Side:
    pg = session_postgres()
    chart_db = pg.create_database("catchup_chart")
    af = make_airflow_env(base / "chart", emulator_url, pg.conn_json(chart_db), pg.url(chart_db))
    af.env = demo.airflow_env(af.env, demo.cpu_count())
    af.chartsync("charts", "import", "--platform", slug.split("-top-")[0])
    af.chartsync("schedules", "add", slug)
    engine = af.engine()
    with engine.begin() as conn:
        conn.execute(update(chart_sync_schedule).values(history_start=start))
    log(f"chart DAG {settings.DAG_ID_PREFIX}{slug}: {periods} daily periods")
    side = run_side(af, [f"{settings.DAG_ID_PREFIX}{slug}", settings.TRACK_METADATA_DAG_ID], periods, log, timeout)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(chart_ranking)).scalar_one()
    if stored != periods:
        raise SystemExit(f"catchup: {stored} rankings stored for {periods} periods")
    return side


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--periods", type=int, default=60, help="daily periods to catch up (issue figure: 365)")
    parser.add_argument("--chart", default="spotify-top-200-global-daily", help="the emulator chart to sync")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per side before giving up")
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    start = date.today() - timedelta(days=args.periods)
    base = Path(tempfile.mkdtemp(prefix="chartsync-catchup-"))
    emulator = start_server(host="127.0.0.1", port=0)
    try:
        noop = noop_side(base, emulator.url, start, args.periods, log, args.timeout)
        chart = chart_side(base, emulator.url, args.chart, start, args.periods, log, args.timeout)
    finally:
        emulator.shutdown()
    ratio = chart.seconds / noop.seconds
    print(f"\ncatchup of {args.periods} daily periods, each on a fresh Airflow ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    print(f"{'DAG':<44} {'runs':>5} {'seconds':>8} {'task median s':>14} {'run median s':>13} {'metadata runs':>14}")
    for side in (noop, chart):
        task = statistics.median(side.task_seconds) if side.task_seconds else 0.0
        run = statistics.median(side.run_seconds) if side.run_seconds else 0.0
        print(f"{side.name:<44} {side.runs:>5} {side.seconds:>8.1f} {task:>14.2f} {run:>13.2f} "
              f"{side.metadata_runs:>14}")
    print(f"ratio chart / no-op: {ratio:.2f}x (target <= {TARGET:.2f}x)")
    if ratio > TARGET:
        print(f"MISSED: the chart DAG's catchup is {ratio:.2f}x the no-op's (target <= {TARGET:.2f}x)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
