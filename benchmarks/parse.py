"""How much the DAG factory costs at parse time, per shard file and for the whole fleet.

For each size (default 1,000, 10,000 and 50,000 schedules on a SQLite chart DB) every shard file
``dags/chart_sync_NN.py`` is parsed the way the dag-processor parses it: imported in a fresh
interpreter that has Airflow loaded, and what the plugin makes the dag-processor import before it
forks (``chart_sync_admin.listeners.preload``), its objects frozen for the garbage collector (the
dag-processor forks its parsing processes after ``gc.freeze()``), with the file's own imports,
its chart DB read and snapshot, and its DAGs. Against each file: the same DAGs written as
literals (same deadlines, assets, callbacks and defaults; no DB, no config objects), parsed the
same way. It prints the slowest file, the fleet (every file once: what one parsing loop costs)
and the ratio; then the cost of building ONE DAG when Airflow's parsing context names it (what a
worker or `airflow dags test` pays), in this process.

Times are CPU seconds (``time.process_time``), the best of ``--repeat`` runs (as ``timeit``
advises: slower runs measure the neighbours on a shared machine, not the code).

Targets (exit 1 naming each one missed): fleet <= 1.10x literals at 1,000 and 10,000 schedules;
no file over 2 s at 10,000. 50,000 is reported, not judged.

    .venv/bin/python benchmarks/parse.py [--sizes 1000 10000 50000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="chartsync-bench-"))
sys.path.insert(0, str(ROOT / "include"))

from chartsync import settings  # noqa: E402

FREQUENCIES = ("daily", "weekly", "monthly")
MAX_RATIO = 1.10  # fleet against literals, up to 10,000 schedules
MAX_FILE_SECONDS = 2.0  # the slowest file at 10,000 schedules
JUDGED_UP_TO = 10_000

# What a parsing process runs: Airflow loaded and frozen (as the dag-processor forks it), then one
# file timed; argv: "file" PATH, or "literal" N SHARD (the literals of that shard's charts).
PARSE = """
import gc, runpy, sys, time
import airflow.sdk
import airflow.dag_processing.processor  # the dag-processor's own code: it forks the parsing process
sys.path.insert(0, {plugins!r})
from chart_sync_admin.listeners import preload
preload()  # what the dag-processor imported before it forked (the plugin's on_starting)
gc.freeze()
if sys.argv[1] == "file":
    start = time.process_time()
    runpy.run_path(sys.argv[2])
else:
    sys.path.insert(0, {benchmarks!r})
    from parse import literal_dags, shard_charts
    charts = shard_charts(int(sys.argv[2]), int(sys.argv[3]))
    start = time.process_time()
    literal_dags(charts)
print(time.process_time() - start)
"""


def seed(path: Path, n: int) -> None:
    from sqlalchemy import create_engine, insert  # here, not above: a literal run imports no SQLAlchemy

    from chartsync.store.migrate import upgrade
    from chartsync.store.tables import chart, chart_sync_schedule

    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(chart), [
            {"id": i + 1, "slug": f"bench-chart-{i}", "name": f"Bench chart {i}", "platform": "spotify",
             "frequency": FREQUENCIES[i % 3], "publication_weekday": 4, "created_at": now} for i in range(n)])
        conn.execute(insert(chart_sync_schedule), [
            {"chart_id": i + 1, "is_active": True, "sync_frequency": FREQUENCIES[i % 3],
             "history_start": date(2025, 11, 24), "sync_immediately": True, "sync_historical_data": True,
             "fetch_track_metadata": True, "created_at": now, "updated_at": now} for i in range(n)])
    engine.dispose()


def shard_charts(n: int, shard: int) -> list[int]:
    return [i for i in range(n) if settings.chart_dag_shard(f"bench-chart-{i}") == shard]


def literal_dags(charts: list[int]) -> dict:
    """The DAGs of these bench charts written as literals: the floor any factory pays to Airflow."""
    from airflow.sdk import DAG, AsyncCallback, CronDataIntervalTimetable, DeadlineAlert, DeadlineReference, task

    from chartsync.builders.callbacks import on_deadline_missed, on_task_failure
    from chartsync.builders.defaults import RANKINGS_ASSET, chart_rankings_asset

    crons = ("0 0 * * *", "0 0 * * FRI", "0 0 1 * *")
    deadlines = (timedelta(hours=36), timedelta(days=9), timedelta(days=35))
    default_args = {"owner": "chart-sync", "retries": 3, "retry_delay": timedelta(seconds=30),
                    "retry_exponential_backoff": 2.0, "max_retry_delay": timedelta(minutes=30),
                    "execution_timeout": timedelta(minutes=30), "pool": "soundcharts_api",
                    "on_failure_callback": on_task_failure}
    dags = {}
    for i in charts:
        about = {"schedule_id": i + 1, "chart_id": i + 1, "chart": f"bench-chart-{i}",
                 "chart_name": f"Bench chart {i}", "frequency": FREQUENCIES[i % 3], "allowed_hours": 12.0}
        with DAG(dag_id=f"chart_sync__bench-chart-{i}", description=f"Sync Bench chart {i} (spotify) rankings",
                 schedule=CronDataIntervalTimetable(crons[i % 3], "UTC"),
                 start_date=datetime(2025, 11, 24, tzinfo=UTC), catchup=True, is_paused_upon_creation=False,
                 max_active_runs=4, default_args=default_args,
                 tags=["chart-sync", "platform:spotify", f"frequency:{FREQUENCIES[i % 3]}"],
                 doc_md="literal", params={},
                 deadline=[DeadlineAlert(reference=DeadlineReference.DAGRUN_LOGICAL_DATE, interval=deadlines[i % 3],
                                         callback=AsyncCallback(on_deadline_missed,
                                                                kwargs={"kind": "deadline", **about}),
                                         name="sync deadline"),
                           DeadlineAlert(reference=DeadlineReference.AVERAGE_RUNTIME(max_runs=20, min_runs=5),
                                         interval=timedelta(hours=1),
                                         callback=AsyncCallback(on_deadline_missed,
                                                                kwargs={"kind": "degradation", **about}),
                                         name="runtime degradation")]) as dag:

            @task(task_id="sync_ranking", outlets=[RANKINGS_ASSET, chart_rankings_asset(f"bench-chart-{i}")],
                  multiple_outputs=True)
            def sync_ranking(**context):
                return {}

            sync_ranking()
        dags[dag.dag_id] = dag
    return dags


def parse_seconds(*argv: str, repeat: int) -> float:
    """The best of ``repeat`` parsing processes (see PARSE)."""
    code = PARSE.format(benchmarks=str(ROOT / "benchmarks"), plugins=str(ROOT / "plugins"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "include")}
    return min(float(subprocess.run([sys.executable, "-c", code, *argv], env=env, check=True, capture_output=True,
                                    text=True).stdout.split()[-1]) for _ in range(repeat))


def once(fn) -> float:
    gc.collect()
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from chartsync.builders import chart_dags as factory

    tmp = Path(tempfile.mkdtemp(prefix="chartsync-parse-"))
    os.environ[settings.SNAPSHOT_ENV] = str(tmp / "snapshot.json")
    missed = []
    print(f"{settings.CHART_DAG_SHARDS} shard files; CPU seconds of a parsing process, the best of {args.repeat}")
    print(f"{'schedules':>10} {'slowest file':>13} {'its literals':>13} {'fleet':>7} {'literals':>9} {'ratio':>6} "
          f"{'per DAG ms':>11}")
    for n in args.sizes:
        db = tmp / f"chart-{n}.db"
        seed(db, n)
        os.environ["AIRFLOW_CONN_CHART_DB"] = json.dumps({"conn_type": "sqlite", "host": str(db)})
        files, literals = [], []
        for k in range(settings.CHART_DAG_SHARDS):
            path = str(ROOT / settings.CHART_DAG_FILE.format(shard=k))
            factory.read_schedule_rows(k)  # writes the shard's snapshot: every timed parse finds it unchanged
            files.append(parse_seconds("file", path, repeat=args.repeat))
            literals.append(parse_seconds("literal", str(n), str(k), repeat=args.repeat))
        slowest = max(range(len(files)), key=files.__getitem__)
        ratio = sum(files) / sum(literals)
        print(f"{n:>10} {files[slowest]:>13.2f} {literals[slowest]:>13.2f} {sum(files):>7.2f} {sum(literals):>9.2f} "
              f"{ratio:>6.2f} {1000 * sum(files) / n:>11.3f}", flush=True)
        if n <= JUDGED_UP_TO and ratio > MAX_RATIO:
            missed.append(f"{n} schedules: fleet {ratio:.2f}x literals (target <= {MAX_RATIO:.2f}x)")
        if n == JUDGED_UP_TO and files[slowest] > MAX_FILE_SECONDS:
            missed.append(f"{n} schedules: {settings.CHART_DAG_FILE.format(shard=slowest)} takes "
                          f"{files[slowest]:.2f} s (target <= {MAX_FILE_SECONDS:.0f} s)")

    n = max(args.sizes)
    one = f"chart_sync__bench-chart-{n // 2}"
    shard = settings.chart_dag_shard(f"bench-chart-{n // 2}")
    t_one = min(once(lambda: factory.build_dags(shard, one)) for _ in range(20))
    t_one_literal = min(once(lambda: literal_dags([n // 2])) for _ in range(20))
    print(f"one DAG of {n} named by the parsing context: {1000 * t_one:.1f} ms "
          f"(a literal DAG: {1000 * t_one_literal:.1f} ms, ratio {t_one / t_one_literal:.1f})")
    for target in missed:
        print(f"MISSED: {target}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
