"""How much the DAG factory costs at parse time, per shard file and for the whole fleet.

For each size (default 1,000, 10,000 and 50,000 schedules on a SQLite chart DB) it times every
shard file's work, ``build_dags(shard=k)`` (read the shard's rows, write its snapshot, build its
DAGs), against the same DAGs written as literals (same deadlines, assets, callbacks and defaults;
no DB, no config objects), shard by shard, alternating, after a garbage collection each. It
prints the slowest file, the fleet (every file once, as the dag-processor parses them) and the
ratios; then the slowest file imported cold in a fresh interpreter that has only Airflow loaded
(what a dag-processor's parsing process pays for it, imports included), and the cost of building
ONE DAG when Airflow's parsing context names it (what a worker or `airflow dags test` pays).
Times are CPU seconds of the process (``time.process_time``), the best of ``--repeat`` samples
(as ``timeit`` advises: slower samples measure the neighbours on a shared machine, not the code).

Targets (exit 1 naming each one missed): fleet <= 1.10x literals at 1,000 and 10,000 schedules;
no file over 2 s at 10,000 (cold). 50,000 is reported, not judged.

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

from sqlalchemy import create_engine, insert  # noqa: E402

from chartsync import settings  # noqa: E402
from chartsync.store.migrate import upgrade  # noqa: E402
from chartsync.store.tables import chart, chart_sync_schedule  # noqa: E402

FREQUENCIES = ("daily", "weekly", "monthly")
MAX_RATIO = 1.10  # fleet against literals, up to 10,000 schedules
MAX_FILE_SECONDS = 2.0  # the slowest file, cold, at 10,000 schedules
JUDGED_UP_TO = 10_000


def seed(path: Path, n: int) -> None:
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


def once(fn) -> float:
    gc.collect()  # each sample starts from the same heap: no collection of the previous one's garbage
    start = time.process_time()
    fn()
    return time.process_time() - start


def shard_times(n: int, repeat: int) -> list[tuple[float, float]]:
    """Per shard: (factory seconds, literal seconds), the best of ``repeat`` alternating samples."""
    from chartsync.builders import chart_dags as factory

    by_shard = [[] for _ in range(settings.CHART_DAG_SHARDS)]
    for i in range(n):
        by_shard[settings.chart_dag_shard(f"bench-chart-{i}")].append(i)
    times = []
    for k, charts in enumerate(by_shard):
        built = factory.build_dags(k)
        assert len(built) == len(charts), (k, len(built), len(charts))
        del built
        samples = [(once(lambda k=k: factory.build_dags(k)), once(lambda c=charts: literal_dags(c)))
                   for _ in range(repeat)]
        times.append((min(s[0] for s in samples), min(s[1] for s in samples)))
    return times


def cold_file_seconds(shard: int, repeat: int) -> float:
    """One shard file imported in a fresh interpreter that has Airflow loaded (a parsing process)."""
    path = ROOT / settings.CHART_DAG_FILE.format(shard=shard)
    code = ("import runpy, time; import airflow.sdk; t = time.process_time(); "
            f"runpy.run_path({str(path)!r}); print(time.process_time() - t)")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "include")}
    runs = [float(subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                                 text=True).stdout.split()[-1]) for _ in range(repeat)]
    return min(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from chartsync.builders import chart_dags as factory

    tmp = Path(tempfile.mkdtemp(prefix="chartsync-parse-"))
    os.environ[settings.SNAPSHOT_ENV] = str(tmp / "snapshot.json")
    missed = []
    print(f"{settings.CHART_DAG_SHARDS} shard files; CPU seconds, the best of {args.repeat}")
    print(f"{'schedules':>10} {'slowest file':>13} {'cold':>6} {'literal':>8} {'fleet':>7} {'literals':>9} "
          f"{'ratio':>6} {'per DAG ms':>11}")
    for n in args.sizes:
        db = tmp / f"chart-{n}.db"
        seed(db, n)
        os.environ["AIRFLOW_CONN_CHART_DB"] = json.dumps({"conn_type": "sqlite", "host": str(db)})
        times = shard_times(n, args.repeat)
        slowest = max(range(len(times)), key=lambda k: times[k][0])
        cold = cold_file_seconds(slowest, args.repeat)
        fleet, literals = sum(t[0] for t in times), sum(t[1] for t in times)
        ratio = fleet / literals
        print(f"{n:>10} {times[slowest][0]:>13.2f} {cold:>6.2f} {times[slowest][1]:>8.2f} {fleet:>7.2f} "
              f"{literals:>9.2f} {ratio:>6.2f} {1000 * fleet / n:>11.3f}", flush=True)
        if n <= JUDGED_UP_TO and ratio > MAX_RATIO:
            missed.append(f"{n} schedules: fleet {ratio:.2f}x literals (target <= {MAX_RATIO:.2f}x)")
        if n == JUDGED_UP_TO and cold > MAX_FILE_SECONDS:
            missed.append(f"{n} schedules: {settings.CHART_DAG_FILE.format(shard=slowest)} takes {cold:.2f} s "
                          f"(target <= {MAX_FILE_SECONDS:.0f} s)")
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
