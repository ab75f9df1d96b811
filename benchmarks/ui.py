"""Admin pages at scale: 10,000 schedules and a year of daily rankings for 50 charts, behind a real
`airflow api-server`.

Seeds a SQLite chart DB directly with SQLAlchemy: 10,000 charts with one schedule each (coverage and
gaps are computed live from the rankings), a year of daily rankings for 50 of them with 100 entries a ranking (the
real charts have 200; 100 keeps seeding 1.8 M entry rows to about a minute on SQLite, and a page
shows 100 entries at a time either way), one execution per synced period plus 5,000 more over
the other charts, 2,000 alerts and one song's audience. Then it starts an api-server and times
every page (the HTML, server-rendered, as a browser gets it with the UI's ``_token`` cookie)
next to Airflow's own endpoints measured in the same run, so the ratios say how the pages
compare with Airflow's on this machine. Times are round trips on localhost over a kept-alive
connection (the server's time plus well under a millisecond). No dag-processor runs: Airflow
knows none of the 10,000 DAGs, so the DAG-state lookup of a page is the cheap case.

    .venv/bin/python benchmarks/ui.py [--schedules 10000] [--ranked-charts 50] [--entries 100] [--requests 30]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "tests")]

import requests  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from chartsync.store.tables import (  # noqa: E402
    chart,
    chart_ranking,
    chart_ranking_entry,
    chart_sync_alert,
    chart_sync_execution,
    chart_sync_schedule,
    track,
    track_audience,
)
from chartsync.core.trends import TRENDS  # noqa: E402
from stacks import make_airflow_env, start_airflow, stop_airflow  # noqa: E402
from latency import p, timings  # noqa: E402

FREQUENCIES = ("daily", "weekly", "monthly")
PLATFORMS = ("spotify", "deezer", "shazam", "apple-music")
TRACKS = 5_000
BATCH = 50_000


def _batched(conn, table, rows) -> None:
    for i in range(0, len(rows), BATCH):
        conn.execute(insert(table), rows[i:i + BATCH])


def seed(engine, schedules: int, ranked: int, entries: int, executions: int, today: date) -> dict:
    """Everything the pages read; returns what the timed URLs need (ids, a song)."""
    now = datetime.now(UTC)
    rng = random.Random(7)
    charts = [{"id": i, "slug": f"bench-chart-{i:05d}", "name": f"Bench chart {i}", "platform": PLATFORMS[i % 4],
               "country_code": "US", "frequency": "daily" if i <= ranked else FREQUENCIES[i % 3],
               "publication_weekday": 3 if i > ranked and i % 3 == 1 else None, "created_at": now}
              for i in range(1, schedules + 1)]
    history_start = today - timedelta(days=365)
    rows = [{"id": c["id"], "chart_id": c["id"], "is_active": i % 10 != 0, "sync_frequency": c["frequency"],
             "sync_immediately": True, "sync_historical_data": True, "fetch_track_metadata": True,
             "history_start": history_start, "created_at": now - timedelta(days=rng.randint(0, 400)),
             "updated_at": now}
            for i, c in enumerate(charts)]
    tracks = [{"id": t, "song_uuid": f"{t:08x}-0000-4000-8000-000000000000", "name": f"Track {t}",
               "credit_name": f"Artist {t % 700}", "artists": [{"name": f"Artist {t % 700}"}],
               "created_at": now, "updated_at": now, "audience_fetched_at": now if t == 1 else None}
              for t in range(1, TRACKS + 1)]
    with engine.begin() as conn:
        _batched(conn, chart, charts)
        _batched(conn, chart_sync_schedule, rows)
        _batched(conn, track, tracks)
    days = [history_start + timedelta(days=d) for d in range(365)]  # up to yesterday
    ranking_id = 0
    runs = []
    for chart_id in range(1, ranked + 1):
        rankings, lines = [], []
        for day in days:
            if rng.random() < 0.02 and day != days[-1]:  # a few gaps, never the newest period
                continue
            ranking_id += 1
            rankings.append({"id": ranking_id, "chart_id": chart_id, "period": day,
                             "ranking_date": f"{day}T00:00:00+00:00", "entry_count": entries,
                             "fetched_at": datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=1)})
            offset = rng.randint(0, TRACKS - entries - 1)
            for position in range(1, entries + 1):
                trend = rng.choices(TRENDS, (5, 2, 40, 40, 13))[0]
                previous = None if trend in ("new", "re-entry") else max(1, position + rng.randint(-5, 5))
                lines.append({"ranking_id": ranking_id, "position": position, "previous_position": previous,
                              "trend": trend, "time_on_chart": rng.randint(1, 300), "time_on_chart_unit": "DOC",
                              "weeks_on_chart": rng.randint(1, 52), "streams": 4_000_000 // position + rng.randint(0, 999),
                              "track_id": offset + position})
            started = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC) + timedelta(minutes=5)
            runs.append(_execution(chart_id, len(runs), day, "success", started, rng))
        with engine.begin() as conn:
            _batched(conn, chart_ranking, rankings)
            _batched(conn, chart_ranking_entry, lines)
    for n in range(executions):
        started = now - timedelta(hours=rng.randint(1, 24 * 40))
        status = rng.choices(("success", "failed", "skipped"), (85, 12, 3))[0]
        runs.append(_execution(rng.randint(ranked + 1, schedules), len(runs), started.date(), status, started, rng))
    alerts = [{"kind": ("failure", "deadline", "overdue", "degradation")[n % 4], "chart_id": rng.randint(1, schedules),
               "dag_id": "chart_sync__bench", "run_id": f"bench-{n}", "period": today - timedelta(days=n % 60),
               "message": f"[chart-sync] alert {n}\nsomething happened to a chart", "channels": {"webhook": "sent"},
               "created_at": now - timedelta(minutes=7 * n)} for n in range(2_000)]
    audience = [{"track_id": 1, "platform": platform, "date": today - timedelta(days=d), "value": 1_000_000 + d * 997,
                 "fetched_at": now} for platform in ("spotify", "apple-music", "deezer", "shazam", "youtube")
                for d in range(90)]
    with engine.begin() as conn:
        _batched(conn, chart_sync_execution, runs)
        _batched(conn, chart_sync_alert, alerts)
        _batched(conn, track_audience, audience)
    return {"rankings": ranking_id, "entries": ranking_id * entries, "executions": len(runs),
            "song": tracks[0]["song_uuid"]}


def _execution(chart_id: int, n: int, period: date, status: str, started: datetime, rng) -> dict:
    duration = rng.uniform(2, 60)
    return {"chart_id": chart_id, "dag_id": f"chart_sync__bench-chart-{chart_id:05d}", "run_id": f"bench-{n}",
            "period": period, "status": status, "started_at": started,
            "completed_at": started + timedelta(seconds=duration), "duration_seconds": duration,
            "rankings_created": 1 if status == "success" else 0, "error": "boom" if status == "failed" else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--ranked-charts", type=int, default=50)
    parser.add_argument("--entries", type=int, default=100, help="entries a ranking (the real charts have 200)")
    parser.add_argument("--executions", type=int, default=5_000, help="besides one a synced period")
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args(argv)

    today = datetime.now(UTC).date()
    with tempfile.TemporaryDirectory(prefix="chartsync-bench-ui-") as tmp:
        base = Path(tmp)
        db = base / "chart.db"
        print(f"setting up Airflow and a chart DB: {args.schedules} schedules, a year of daily rankings for "
              f"{args.ranked_charts} charts with {args.entries} entries each", flush=True)
        af = make_airflow_env(base, "http://127.0.0.1:9", json.dumps({"conn_type": "sqlite", "host": str(db)}),
                              f"sqlite:///{db}")
        started = time.perf_counter()
        seeded = seed(af.engine(), args.schedules, args.ranked_charts, args.entries, args.executions, today)
        print(f"seeded {seeded['rankings']:,} rankings, {seeded['entries']:,} entries, {seeded['executions']:,} "
              f"executions in {time.perf_counter() - started:.0f} s ({db.stat().st_size / 1e6:.0f} MB)", flush=True)
        services = start_airflow(af, components=("api-server",))
        try:
            session = requests.Session()
            token = services.token()
            session.cookies.set("_token", token)  # as the Airflow UI's login leaves it
            api = requests.Session()
            api.headers["Authorization"] = f"Bearer {token}"
            base_url = services.api_url
            newest = today - timedelta(days=1)
            ranked = min(7, args.ranked_charts)  # a chart with a year of rankings
            ui = "/chart-sync/ui"
            baselines = {
                "airflow GET /api/v2/monitor/health": (api, "/api/v2/monitor/health"),
                "airflow GET /api/v2/dags?limit=1": (api, "/api/v2/dags?limit=1"),
            }
            pages = {
                "charts": "/charts",
                "charts ?status=overdue": "/charts?status=overdue",
                "charts ?q=chart-0999": "/charts?q=chart-0999",
                "schedules": "/schedules",
                "schedules ?sort=success_rate&desc=1": "/schedules?sort=success_rate&desc=1",
                "schedules ?status=overdue": "/schedules?status=overdue",
                "schedule detail (a year of rankings)": f"/schedules/{ranked}",
                "schedule history ?status=failed&from=": f"/schedules/{ranked}?status=failed&from={today - timedelta(days=90)}",
                "ranking (newest period)": f"/charts/{ranked}/ranking",
                "ranking ?sort=streams&desc=1&trend=up": f"/charts/{ranked}/ranking?period={newest}&sort=streams&desc=1&trend=up",
                "ranking ?q=artist 12": f"/charts/{ranked}/ranking?period={newest}&q=artist+12",
                "stats (30 days)": "/stats",
                "stats (365 days)": "/stats?days=365",
                "alerts": "/alerts",
                "alerts ?kind=failure": "/alerts?kind=failure",
                "song (fresh audience)": f"/songs/{seeded['song']}",
            }
            results = {name: timings(s, base_url + path, args.requests) for name, (s, path) in baselines.items()}
            for name, path in pages.items():
                results[f"page {name}"] = timings(session, base_url + ui + path, args.requests)
                print(f"  timed {name}", flush=True)
            body = session.get(base_url + ui + "/schedules", timeout=60).text
        finally:
            stop_airflow(services)

    assert f"{args.schedules:,} schedules" in body, "the schedules page does not see every schedule"
    health = statistics.median(results["airflow GET /api/v2/monitor/health"])
    dags = statistics.median(results["airflow GET /api/v2/dags?limit=1"])
    print(f"\n{args.requests} requests each after 3 warm-up requests; {args.schedules:,} schedules, "
          f"{seeded['entries']:,} ranking entries, {seeded['executions']:,} executions\n")
    print(f"{'request':<50} {'p50 ms':>8} {'p95 ms':>8} {'p50 / health':>13} {'p50 / dags':>11}")
    slow = []
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:<50} {median:8.1f} {p(values, 95):8.1f} {median / health:13.1f} {median / dags:11.1f}")
        if name.startswith("page") and p(values, 95) > 300:
            slow.append(name)
    print("\ntarget: under 300 ms a page (p95): " + ("met by every page" if not slow else f"missed by {', '.join(slow)}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
