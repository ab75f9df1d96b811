"""REST API at scale: 10,000 schedules behind a real `airflow api-server`.

Seeds a SQLite chart DB directly with SQLAlchemy (synthetic daily charts, one schedule each,
a few thousand execution rows), starts an api-server on it, and times the chart-sync endpoints
against Airflow's own endpoints measured in the same run, so the ratios say how our pages
compare with Airflow's on this machine. Times are round trips on localhost over a kept-alive
connection (the server's time plus well under a millisecond). No dag-processor runs: Airflow
knows none of the 10,000 DAGs, so the DAG-state lookup of a page is the cheap case.

    .venv/bin/python benchmarks/api.py [--schedules 10000] [--executions 5000] [--requests 50]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "tests")]

import requests  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from chartsync.store.tables import chart, chart_sync_execution, chart_sync_schedule  # noqa: E402
from stacks import make_airflow_env, start_airflow, stop_airflow  # noqa: E402
from latency import p, timings  # noqa: E402

FREQUENCIES = ("daily", "weekly", "monthly")


def seed(engine, schedules: int, executions: int) -> None:
    now = datetime.now(UTC)
    rng = random.Random(7)
    charts = [{"id": i, "slug": f"bench-chart-{i:05d}", "name": f"Bench chart {i}", "platform":
               ("spotify", "deezer", "shazam", "apple-music")[i % 4], "country_code": "US", "frequency":
               FREQUENCIES[i % 3], "publication_weekday": 3 if i % 3 == 1 else None, "created_at": now}
              for i in range(1, schedules + 1)]
    rows = [{"chart_id": c["id"], "is_active": i % 10 != 0, "sync_frequency": c["frequency"],
             "sync_immediately": True, "sync_historical_data": True, "fetch_track_metadata": True,
             "history_start": date.today() - timedelta(days=365),
             "created_at": now - timedelta(days=rng.randint(0, 60)), "updated_at": now}
            for i, c in enumerate(charts)]
    runs = []
    for n in range(executions):
        started = now - timedelta(hours=rng.randint(1, 24 * 40))
        status = rng.choices(("success", "failed", "skipped"), (85, 12, 3))[0]
        duration = rng.uniform(2, 60)
        runs.append({"chart_id": rng.randint(1, schedules), "dag_id": "chart_sync__bench", "run_id": f"bench-{n}",
                     "period": started.date(), "status": status, "started_at": started,
                     "completed_at": started + timedelta(seconds=duration), "duration_seconds": duration,
                     "error": "boom" if status == "failed" else None})
    with engine.begin() as conn:
        conn.execute(insert(chart), charts)
        conn.execute(insert(chart_sync_schedule), rows)
        conn.execute(insert(chart_sync_execution), runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--executions", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="chartsync-bench-api-") as tmp:
        base = Path(tmp)
        db = base / "chart.db"
        print(f"setting up Airflow and a chart DB with {args.schedules} schedules, {args.executions} executions",
              flush=True)
        af = make_airflow_env(base, "http://127.0.0.1:9", json.dumps({"conn_type": "sqlite", "host": str(db)}),
                              f"sqlite:///{db}")
        seed(af.engine(), args.schedules, args.executions)
        services = start_airflow(af, components=("api-server",))
        try:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {services.token()}"
            base_url = services.api_url
            cases = {
                "airflow GET /api/v2/monitor/health": "/api/v2/monitor/health",
                "airflow GET /api/v2/dags?limit=1": "/api/v2/dags?limit=1",
                "GET /api/sync/schedules/": "/chart-sync/api/sync/schedules/",
                "GET /api/sync/stats/": "/chart-sync/api/sync/stats/",
                "GET /api/sync/schedules/?overdue=true": "/chart-sync/api/sync/schedules/?overdue=true",
            }
            results = {name: timings(session, base_url + path, args.requests) for name, path in cases.items()}
            total = session.get(f"{base_url}/chart-sync/api/sync/schedules/?page_size=1", timeout=60).json()["total"]
        finally:
            stop_airflow(services)

    assert total == args.schedules, f"the API sees {total} schedules, expected {args.schedules}"
    health = statistics.median(results["airflow GET /api/v2/monitor/health"])
    dags = statistics.median(results["airflow GET /api/v2/dags?limit=1"])
    print(f"\n{args.requests} requests each, default page (50 schedules), {total} schedules in the chart DB\n")
    print(f"{'endpoint':<42} {'p50 ms':>8} {'p95 ms':>8} {'p50 / health':>13} {'p50 / dags':>11}")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:<42} {median:8.1f} {p(values, 95):8.1f} {median / health:13.1f} {median / dags:11.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
