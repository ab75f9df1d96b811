"""Live gap detection at scale on PostgreSQL: the one statement every door runs against a naive
per-chart loop.

Seeds N charts (default 1,000) with one year of daily expected periods (as the gap audit stores
them) and stored rankings with random holes, then times what the doors run when they show gaps
and coverage: ``services.gaps.list_gaps`` (every active schedule's windows, the one live statement
over the calendar, the expected periods and the rankings, the heal states) and
``services.gaps.coverages`` (coverage of every chart), plus the bare statement; and the naive way
(per chart: read expected and stored periods, diff and merge ranges in Python). It checks that
both find the same ranges and prints the ratios.

    .venv/bin/python benchmarks/gaps.py [--charts 1000] [--days 365] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "tests")]

from sqlalchemy import create_engine, insert, select, text  # noqa: E402

from chartsync.services import gaps  # noqa: E402
from chartsync.core.paging import PageRequest  # noqa: E402
from chartsync.store import gaps as gap_store  # noqa: E402
from chartsync.store import pages  # noqa: E402
from chartsync.store.migrate import upgrade  # noqa: E402
from chartsync.store.tables import chart, chart_expected_period, chart_ranking, chart_sync_schedule  # noqa: E402
from stacks.postgres import start_postgres  # noqa: E402

TODAY = date(2026, 11, 24)
WINDOWS: list = []


def seed(engine, charts: int, days: int, hole_rate: float) -> None:
    rng = random.Random(42)
    now = datetime.now(UTC)
    first = TODAY - timedelta(days=days)
    periods = [first + timedelta(days=i) for i in range(days)]
    with engine.begin() as conn:
        conn.execute(insert(chart), [{"id": c, "slug": f"bench-{c}", "name": f"Bench {c}", "platform": "spotify",
                                      "frequency": "daily", "created_at": now} for c in range(1, charts + 1)])
        conn.execute(insert(chart_sync_schedule), [
            {"chart_id": c, "is_active": True, "sync_frequency": "daily", "history_start": first,
             "created_at": now, "updated_at": now} for c in range(1, charts + 1)])
    batch_expected, batch_stored = [], []
    for c in range(1, charts + 1):
        for d in periods:
            batch_expected.append({"chart_id": c, "period": d, "in_calendar": True, "in_api": True,
                                   "expected": True, "refreshed_at": now})
            if rng.random() >= hole_rate:
                batch_stored.append({"chart_id": c, "period": d, "ranking_date": d.isoformat(),
                                     "entry_count": 200, "fetched_at": now})
        if c % 100 == 0 or c == charts:
            with engine.begin() as conn:
                conn.execute(insert(chart_expected_period), batch_expected)
                conn.execute(insert(chart_ranking), batch_stored)
            batch_expected, batch_stored = [], []
            print(f"  seeded {c}/{charts} charts", end="\r", flush=True)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    print()


def live_ranges(engine) -> list[tuple]:
    """What ``chartsync gaps list``, ``GET /api/sync/gaps/`` and heal compute: every active chart's gaps now."""
    return [(g.chart_id, g.start, g.end, g.periods) for g in gaps.list_gaps(engine, today=TODAY)]


def bare_statement(engine) -> int:
    """The one statement alone (``store.gaps.live_runs``), for the windows read beforehand."""
    return len(gap_store.live_runs(engine, WINDOWS))


def naive_ranges(engine) -> list[tuple]:
    """What a first implementation does: one round trip per chart, the merge in Python."""
    e, r = chart_expected_period, chart_ranking
    ranges = []
    with engine.connect() as conn:
        chart_ids = conn.execute(select(chart_sync_schedule.c.chart_id).where(chart_sync_schedule.c.is_active)
                                 .order_by(chart_sync_schedule.c.chart_id)).scalars().all()
        for chart_id in chart_ids:
            expected = conn.execute(select(e.c.period).where(e.c.chart_id == chart_id, e.c.expected,
                                                             e.c.period < TODAY).order_by(e.c.period)).scalars().all()
            stored = set(conn.execute(select(r.c.period).where(r.c.chart_id == chart_id)).scalars())
            run: list[date] = []
            for day in expected + [None]:
                if day is not None and day not in stored:
                    run.append(day)
                elif run:
                    ranges.append((chart_id, run[0], run[-1], len(run)))
                    run = []
    return ranges


def sorted_by_coverage(engine) -> list[int]:
    """The schedules page sorted by coverage: the live coverage of every schedule, one page of ids."""
    every = gaps.windows(engine, today=TODAY)
    ids, _ = pages.schedule_ids(engine, search=None, platform=None, frequency=None, status=None, sort="coverage",
                                descending=False, paging=PageRequest(50), now=datetime.now(UTC),
                                coverage=gap_store.coverage_subquery(every), windows=len(every))
    return ids


def timed(fn, repeat: int) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--charts", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--hole-rate", type=float, default=0.02)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    pg = start_postgres()
    try:
        engine = create_engine(pg.url(pg.create_database("chartsync_bench_gaps")))
        upgrade(engine)
        print(f"seeding {args.charts} charts x {args.days} daily periods ({args.hole_rate:.0%} missing)")
        seed(engine, args.charts, args.days, args.hole_rate)
        t_live, live = timed(lambda: live_ranges(engine), args.repeat)
        t_naive, naive = timed(lambda: naive_ranges(engine), max(1, args.repeat // 2))
        assert sorted(live) == sorted(naive), "the two methods disagree"
        WINDOWS[:] = gaps.windows(engine, today=TODAY)
        t_bare, runs = timed(lambda: bare_statement(engine), args.repeat)
        t_cov, cov = timed(lambda: gaps.coverages(engine, list(range(1, args.charts + 1)), today=TODAY), args.repeat)
        assert sum(c.gap_periods for c in cov.values()) == sum(r[3] for r in live)
        t_sort, _ = timed(lambda: sorted_by_coverage(engine), args.repeat)
        print(f"gap ranges found: {len(live)} over {args.charts} charts ({runs} runs of stored periods and gaps)")
        print(f"live gaps, all charts (list_gaps)  : {t_live * 1000:8.1f} ms")
        print(f"  of which the one statement       : {t_bare * 1000:8.1f} ms")
        print(f"live coverage, all charts          : {t_cov * 1000:8.1f} ms")
        print(f"a page of schedules by coverage    : {t_sort * 1000:8.1f} ms")
        print(f"naive per-chart loop (baseline)    : {t_naive * 1000:8.1f} ms")
        print(f"ratio naive / live gaps            : {t_naive / t_live:8.1f}x")
        engine.dispose()
    finally:
        pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
