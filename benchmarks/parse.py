"""How much the DAG factory costs at parse time.

Builds 1,000 and 10,000 chart DAGs through the factory (one query on a SQLite chart DB, then
one DAG per row) and the same DAGs from literals (no DB, no config objects), in one run, and
prints the ratio. Then the cost of building ONE DAG of 10,000 when Airflow's parsing context
names it (what a worker or `airflow dags test` pays).

    .venv/bin/python benchmarks/parse.py [--sizes 1000 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="chartsync-bench-"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

from sqlalchemy import create_engine, insert  # noqa: E402

from chartsync.store.migrate import upgrade  # noqa: E402
from chartsync.store.tables import chart, chart_sync_schedule  # noqa: E402

FREQUENCIES = ("daily", "weekly", "monthly")


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


def literal_dags(n: int) -> dict:
    """The same DAG shapes, written as literals: the floor any factory pays to Airflow."""
    from airflow.sdk import DAG, CronDataIntervalTimetable, task

    crons = ("0 0 * * *", "0 0 * * FRI", "0 0 1 * *")
    default_args = {"owner": "chart-sync", "retries": 3, "retry_delay": timedelta(seconds=30),
                    "retry_exponential_backoff": 2.0, "max_retry_delay": timedelta(minutes=30),
                    "execution_timeout": timedelta(minutes=30), "pool": "soundcharts_api"}
    dags = {}
    for i in range(n):
        with DAG(dag_id=f"chart_sync__bench-chart-{i}", schedule=CronDataIntervalTimetable(crons[i % 3], "UTC"),
                 start_date=datetime(2025, 11, 24, tzinfo=UTC), catchup=True, max_active_runs=4,
                 default_args=default_args, tags=["chart-sync", "platform:spotify"], doc_md="literal") as dag:

            @task(task_id="sync_ranking")
            def sync_ranking() -> None:
                return None

            sync_ranking()
        dags[dag.dag_id] = dag
    return dags


def timed(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from chartsync.builders import chart_dags as factory

    tmp = Path(tempfile.mkdtemp(prefix="chartsync-parse-"))
    os.environ["CHARTSYNC_SCHEDULE_SNAPSHOT"] = str(tmp / "snapshot.json")
    print(f"{'schedules':>10} {'factory s':>10} {'literals s':>11} {'ratio':>7} {'per DAG ms':>11}")
    for n in args.sizes:
        db = tmp / f"chart-{n}.db"
        seed(db, n)
        os.environ["AIRFLOW_CONN_CHART_DB"] = json.dumps({"conn_type": "sqlite", "host": str(db)})
        built = factory.build_dags()
        assert len(built) == n, len(built)
        t_factory = timed(factory.build_dags, args.repeat)
        t_literal = timed(lambda: literal_dags(n), args.repeat)
        print(f"{n:>10} {t_factory:>10.2f} {t_literal:>11.2f} {t_factory / t_literal:>7.2f} "
              f"{1000 * t_factory / n:>11.3f}", flush=True)
    n = max(args.sizes)
    one = f"chart_sync__bench-chart-{n // 2}"
    t_one = timed(lambda: factory.build_dags(one), 20)
    t_one_literal = timed(lambda: literal_dags(1), 20)
    print(f"one DAG of {n} named by the parsing context: {1000 * t_one:.1f} ms "
          f"(a literal DAG: {1000 * t_one_literal:.1f} ms, ratio {t_one / t_one_literal:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
