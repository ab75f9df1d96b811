"""The ingest floor: ``store_ranking`` on PostgreSQL against the least work any store can do, and
against the naive per-row way; and what the data quality checks add to it.

Generates one chart's daily rankings once (a year of 200 entries by default; most tracks stay
from one day to the next, a few are new each day, now and then one re-enters; a fixed seed), then
times in one run, each in a fresh migrated database on a throw-away PostgreSQL:

(a) the COPY floor: per period one transaction that COPYs the ranking row, the new tracks and the
    entries, with ids the client already knows (no lookups at all);
(b) ``store_ranking`` for every period, one transaction per period, as the sync task calls it;
(c) the per-row way: per entry, look the track up, insert it if new, insert the entry;
(d) ``store_ranking`` again over the same periods: it must report 0 created and 0 updated and
    leave every row as it was;
(e) (b) with the quality checks, as ``services.sync.sync_period`` stores a fetched period
    (``store_checked_ranking``: the claim reading the quality context too, the hard checks, the rest
    of ``store_ranking``, the soft checks and the quality row);
(f) (e) again over the same periods: nothing written, the quality rows included;
(g) (b) and (h) (e) again, each period in a new database session, as a sync task stores its one period
    (connecting and closing not timed): what the checks add where the session's catalog caches are
    cold and every statement is planned afresh. Shown, not judged.

(a), (b), (c) and (e) take turns period by period, so a busy machine (2 shared cores) slows them
alike; so do (g) and (h), after them. (b) and (e) must store the same rows as (a) and (c); (e) must
write one unflagged quality row per period (the generated year is clean).

It prints a table and exits 1 when a target is missed: (b) at most 1.5x (a), (c) at least 30x (b),
(e) at most 1.10x (b).

    .venv/bin/python benchmarks/ingest.py [--periods 365] [--entries 200] [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "tests")]

import psycopg2  # noqa: E402
from sqlalchemy import Connection, Engine, create_engine, func, insert, select, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from chartsync.core.outcomes import SyncResult  # noqa: E402
from chartsync.core.trends import trend, weeks_on_chart  # noqa: E402
from chartsync.services.sync import store_checked_ranking  # noqa: E402
from chartsync.soundcharts.models import Ranking, RankingEntry, atom_for  # noqa: E402
from chartsync.store.migrate import upgrade  # noqa: E402
from chartsync.store.rankings import store_ranking  # noqa: E402
from chartsync.store.tables import chart, chart_ranking, chart_ranking_entry, chart_ranking_quality, track  # noqa: E402
from stacks.postgres import Postgres, start_postgres  # noqa: E402

CHART_ID = 1
FIRST_PERIOD = date(2025, 11, 24)
NOW = datetime(2026, 11, 24, tzinfo=UTC)
SEED = 13
MAX_FLOOR_RATIO, MIN_PER_ROW_RATIO, MAX_CHECKS_RATIO = 1.5, 30.0, 1.10
TEMPLATE = "chartsync_bench_ingest"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the rankings -------------------------------------------------------------------------------------------
def generate(periods: int, entries: int, seed: int = SEED) -> list[Ranking]:
    """Daily rankings of one chart: each day 2 to 8 tracks leave (mostly from the bottom half) and as many
    come in, a quarter of those re-entering; the rest move a few places."""
    rng = random.Random(seed)
    songs = iter(range(1, 10**9))

    def song() -> str:
        return f"{next(songs):08d}-bench-song"

    order = [song() for _ in range(entries)]
    previous: dict[str, int] = {}
    days: dict[str, int] = {}
    left: list[str] = []
    rankings = []
    for i in range(periods):
        day = FIRST_PERIOD + timedelta(days=i)
        if i:
            leaving = set(rng.sample(order[entries // 3:], rng.randint(2, 8)))
            order = [s for s in order if s not in leaving]
            for _ in leaving:
                comer = left.pop(rng.randrange(len(left))) if left and rng.random() < 0.25 else song()
                order.insert(rng.randrange(len(order) + 1), comer)
            left += leaving
            place = {s: i + rng.gauss(0, 3) for i, s in enumerate(order)}
            order.sort(key=place.__getitem__)
        ranked = []
        for position, uuid in enumerate(order, start=1):
            state = None if uuid in previous else ("RE_ENTRY" if uuid in days else "NEW")
            days[uuid] = days.get(uuid, 0) + 1
            ranked.append(RankingEntry(
                song_uuid=uuid, song_name=f"Song {uuid[:8]}", credit_name=f"Artist {int(uuid[:8]) % 997}",
                image_url=f"https://img.example/{uuid}.jpg", position=position,
                previous_position=previous.get(uuid), entry_state=state, time_on_chart=days[uuid],
                time_on_chart_unit="DOC", metric=int(3_000_000 / position ** 0.6 * rng.uniform(0.9, 1.1))))
        previous = {uuid: position for position, uuid in enumerate(order, start=1)}
        rankings.append(Ranking(slug="bench-chart", ranking_date=atom_for(day), entries=ranked))
    return rankings


# -- the ways, one period at a time -------------------------------------------------------------------------
class CopyFloor:
    """Per period one transaction of three COPYs; the client numbers rankings and tracks itself."""

    def __init__(self, pg: Postgres, database: str) -> None:
        self.conn = psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password,
                                     dbname=database)
        self.track_ids: dict[str, int] = {}
        self.rankings = 0

    def store(self, ranking: Ranking) -> None:
        self.rankings += 1
        new_tracks, entry_lines = io.StringIO(), io.StringIO()
        for e in ranking.entries:
            if e.song_uuid not in self.track_ids:
                self.track_ids[e.song_uuid] = len(self.track_ids) + 1
                new_tracks.write(_line(self.track_ids[e.song_uuid], e.song_uuid, e.song_name, e.credit_name,
                                       e.image_url, NOW, NOW))
            entry_lines.write(_line(self.rankings, e.position, e.previous_position,
                                    trend(e.position, e.previous_position, e.entry_state), e.time_on_chart,
                                    e.time_on_chart_unit, weeks_on_chart(e.time_on_chart, e.time_on_chart_unit),
                                    e.metric, self.track_ids[e.song_uuid]))
        with self.conn.cursor() as cur:
            cur.copy_from(io.StringIO(_line(self.rankings, CHART_ID, ranking.period, ranking.ranking_date,
                                            len(ranking.entries), NOW)), "chart_ranking",
                          columns=("id", "chart_id", "period", "ranking_date", "entry_count", "fetched_at"))
            new_tracks.seek(0)
            cur.copy_from(new_tracks, "track", columns=("id", "song_uuid", "name", "credit_name", "image_url",
                                                        "created_at", "updated_at"))
            entry_lines.seek(0)
            cur.copy_from(entry_lines, "chart_ranking_entry",
                          columns=("ranking_id", "position", "previous_position", "trend", "time_on_chart",
                                   "time_on_chart_unit", "weeks_on_chart", "streams", "track_id"))
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def _line(*values) -> str:
    return "\t".join(r"\N" if v is None else str(v) for v in values) + "\n"


def store_in(conn: Connection, ranking: Ranking) -> SyncResult:
    return store_ranking(conn, CHART_ID, ranking, NOW)


def check_and_store_in(conn: Connection, ranking: Ranking) -> SyncResult:
    return store_checked_ranking(conn, CHART_ID, "bench-chart", ranking, NOW)


def with_store_ranking(engine: Engine, ranking: Ranking) -> SyncResult:
    """As ``services.sync.sync_period`` stores a period: in a transaction of its own."""
    with engine.begin() as conn:
        return store_in(conn, ranking)


def with_quality_checks(engine: Engine, ranking: Ranking) -> SyncResult:
    """As ``services.sync.sync_period`` stores a fetched period: checked, with its quality row."""
    with engine.begin() as conn:
        return check_and_store_in(conn, ranking)


class NewSessions:
    """A new database session for every period, as a sync task has: the store is timed, connecting and
    closing are not (``overhead``, which the run subtracts)."""

    def __init__(self, url: str, store_one) -> None:
        self.engine = create_engine(url, poolclass=NullPool)
        self.store_one = store_one  # (conn, ranking) -> SyncResult, in the session's one transaction
        self.overhead = 0.0

    def store(self, ranking: Ranking) -> SyncResult:
        start = time.perf_counter()
        conn = self.engine.connect()
        self.overhead += time.perf_counter() - start
        try:
            with conn.begin():
                return self.store_one(conn, ranking)
        finally:
            start = time.perf_counter()
            conn.close()
            self.overhead += time.perf_counter() - start


def per_row(engine: Engine, ranking: Ranking) -> None:
    """What a first implementation does: a round trip per track lookup, per new track, per entry."""
    with engine.begin() as conn:
        ranking_id = conn.execute(insert(chart_ranking).values(
            chart_id=CHART_ID, period=ranking.period, ranking_date=ranking.ranking_date,
            entry_count=len(ranking.entries), fetched_at=NOW)).inserted_primary_key[0]
        for e in ranking.entries:
            track_id = conn.execute(select(track.c.id).where(track.c.song_uuid == e.song_uuid)).scalar()
            if track_id is None:
                track_id = conn.execute(insert(track).values(
                    song_uuid=e.song_uuid, name=e.song_name, credit_name=e.credit_name, image_url=e.image_url,
                    created_at=NOW, updated_at=NOW)).inserted_primary_key[0]
            conn.execute(insert(chart_ranking_entry).values(
                ranking_id=ranking_id, position=e.position, previous_position=e.previous_position,
                trend=trend(e.position, e.previous_position, e.entry_state), time_on_chart=e.time_on_chart,
                time_on_chart_unit=e.time_on_chart_unit,
                weeks_on_chart=weeks_on_chart(e.time_on_chart, e.time_on_chart_unit), streams=e.metric,
                track_id=track_id))


# -- the run --------------------------------------------------------------------------------------------------
def row_versions(engine: Engine) -> tuple:
    """Row counts and the newest row version (xmin) of the written tables: equal before and after = untouched."""
    with engine.connect() as conn:
        return tuple(conn.execute(select(func.count(), text("max(xmin::text::bigint)")).select_from(t)).one()
                     for t in (chart_ranking, chart_ranking_entry, track, chart_ranking_quality))


def contents(engine: Engine) -> list[tuple]:
    """What every way must end with: each period's entries as (position, song, trend, streams)."""
    r, e = chart_ranking, chart_ranking_entry
    with engine.connect() as conn:
        return conn.execute(select(r.c.period, e.c.position, track.c.song_uuid, e.c.trend, e.c.streams)
                            .join(e, e.c.ranking_id == r.c.id).join(track, track.c.id == e.c.track_id)
                            .order_by(r.c.period, e.c.position)).all()


def quality_counts(engine: Engine) -> tuple[int, int]:
    """Quality rows, and how many of them are flagged."""
    q = chart_ranking_quality.c
    with engine.connect() as conn:
        return tuple(conn.execute(select(func.count(), func.count().filter(q.flagged))).one())


def fresh_database(pg: Postgres, name: str) -> str:
    return pg.create_database(name, template=TEMPLATE)


COUNTS = ("rankings_created", "rankings_updated", "entries_written", "tracks_created", "tracks_updated")


def run(pg: Postgres, rankings: list[Ranking], repeat: int) -> tuple[dict[str, float], list[str]]:
    """Median seconds of each way, and the checks that failed.

    (a), (b), (c) and (e) take turns period by period (in a rotating order), so a busy machine slows them
    alike; the reruns (d) and (f) run after them, then (g) and (h) in turns."""
    samples: dict[str, list[float]] = {way: [] for way in ("floor", "store", "per_row", "rerun", "checked",
                                                           "rerun_checked", "store_session", "checked_session")}
    problems: list[str] = []
    expected = {"rankings_created": len(rankings), "entries_written": sum(len(r.entries) for r in rankings),
                "tracks_created": len({e.song_uuid for r in rankings for e in r.entries})}
    for attempt in range(1, repeat + 1):
        floor = CopyFloor(pg, fresh_database(pg, "ingest_floor"))
        store = create_engine(pg.url(fresh_database(pg, "ingest_store")))
        checked = create_engine(pg.url(fresh_database(pg, "ingest_checked")))
        by_row = create_engine(pg.url(fresh_database(pg, "ingest_per_row")))
        steps = [("floor", floor.store), ("store", lambda r: with_store_ranking(store, r)),
                 ("checked", lambda r: with_quality_checks(checked, r)), ("per_row", lambda r: per_row(by_row, r))]
        seconds = dict.fromkeys(("floor", "store", "checked", "per_row"), 0.0)
        first = {way: dict.fromkeys(COUNTS, 0) for way in ("store", "checked")}
        for i, ranking in enumerate(rankings):
            for way, step in steps[i % 4:] + steps[:i % 4]:
                start = time.perf_counter()
                result = step(ranking)
                seconds[way] += time.perf_counter() - start
                if way in first:
                    _add(first[way], result)
            if (i + 1) % 50 == 0:
                log(f"  [{attempt}/{repeat}] {i + 1}/{len(rankings)} periods")
        floor.close()
        log(f"  [{attempt}/{repeat}] (a) COPY floor {seconds['floor']:.2f} s, (b) store_ranking "
            f"{seconds['store']:.2f} s, (c) per-row {seconds['per_row']:.2f} s, (e) with the quality checks "
            f"{seconds['checked']:.2f} s; store_ranking counted {first['store']}")
        for way, counted in first.items():
            if any(counted[name] != count for name, count in expected.items()):
                problems.append(f"{way} counted {counted}, expected {expected}")
        if quality_counts(checked) != (len(rankings), 0):
            problems.append(f"(e) wrote {quality_counts(checked)} (quality rows, flagged), expected "
                            f"({len(rankings)}, 0)")
        reruns = (("rerun", store, with_store_ranking), ("rerun_checked", checked, with_quality_checks))
        for way, engine, store_one in reruns:
            before = row_versions(engine)
            again = dict.fromkeys(COUNTS, 0)
            start = time.perf_counter()
            for ranking in rankings:
                _add(again, store_one(engine, ranking))
            seconds[way] = time.perf_counter() - start
            log(f"  [{attempt}/{repeat}] {way} {seconds[way]:.2f} s; counted {again}")
            if any(again.values()) or row_versions(engine) != before:
                problems.append(f"the {way} changed something: {again}")
        sessions = {"store_session": NewSessions(pg.url(fresh_database(pg, "ingest_store_session")), store_in),
                    "checked_session": NewSessions(pg.url(fresh_database(pg, "ingest_checked_session")),
                                                   check_and_store_in)}
        for way in sessions:
            seconds[way] = 0.0
        for i, ranking in enumerate(rankings):
            for way, way_sessions in sorted(sessions.items(), reverse=i % 2 == 1):
                start = time.perf_counter()
                counted = way_sessions.store(ranking)
                seconds[way] += time.perf_counter() - start
                if counted.rankings_created != 1:
                    problems.append(f"{way} did not store {ranking.period}: {counted}")
        for way, way_sessions in sessions.items():
            seconds[way] -= way_sessions.overhead
            way_sessions.engine.dispose()
        log(f"  [{attempt}/{repeat}] a new session per period: (g) store_ranking {seconds['store_session']:.2f} s, "
            f"(h) with the quality checks {seconds['checked_session']:.2f} s")
        if attempt == 1:
            floor_engine = create_engine(pg.url("ingest_floor"))
            stored = contents(store)
            if any(contents(way) != stored for way in (floor_engine, by_row, checked)):
                problems.append("the ways disagree on what is stored")
            floor_engine.dispose()
        for engine in (store, checked, by_row):
            engine.dispose()
        for way, value in seconds.items():
            samples[way].append(value)
    return {way: statistics.median(s) for way, s in samples.items()}, problems


def _add(totals: dict[str, int], result: SyncResult) -> None:
    for name in totals:
        totals[name] += getattr(result, name)


def table(seconds: dict[str, float], periods: int) -> str:
    floor = seconds["floor"]
    rows = [("(a) COPY floor, a transaction per period", "floor"),
            ("(b) store_ranking, a transaction per period", "store"),
            ("(c) per-row: look up, insert track, insert entry", "per_row"),
            ("(d) store_ranking rerun, same data (no-op)", "rerun"),
            ("(e) store_ranking with the quality checks", "checked"),
            ("(f) (e) rerun, same data (no-op)", "rerun_checked"),
            ("(g) (b) in a new session per period, as a sync task", "store_session"),
            ("(h) (e) in a new session per period, as a sync task", "checked_session")]
    lines = ["| way | total s | per period ms | vs floor |", "|---|---:|---:|---:|"]
    lines += [f"| {label} | {seconds[key]:.2f} | {1000 * seconds[key] / periods:.2f} | "
              f"{seconds[key] / floor:.2f}x |" for label, key in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--periods", type=int, default=365, help="daily periods of the chart (default 365)")
    parser.add_argument("--entries", type=int, default=200, help="entries per ranking (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way; the median counts (default 3)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 30 periods, once")
    args = parser.parse_args(argv)
    if args.quick:
        args.periods, args.repeat = 30, 1
    if args.periods < 1 or args.entries < 10 or args.repeat < 1:
        parser.error("--periods and --repeat must be positive, --entries at least 10")

    rankings = generate(args.periods, args.entries)
    tracks = len({e.song_uuid for r in rankings for e in r.entries})
    log(f"ingest: {args.periods} daily periods x {args.entries} entries ({args.periods * args.entries} entry rows, "
        f"{tracks} tracks), {args.repeat} run(s) of each way")
    pg = start_postgres()
    try:
        template = create_engine(pg.url(pg.create_database(TEMPLATE)))
        upgrade(template)
        with template.begin() as conn:
            conn.execute(insert(chart).values(id=CHART_ID, slug="bench-chart", name="Bench chart", platform="spotify",
                                              frequency="daily", max_results=args.entries, created_at=NOW))
        template.dispose()
        seconds, problems = run(pg, rankings, args.repeat)
    finally:
        pg.stop()
    print(f"{args.periods} periods x {args.entries} entries, {tracks} tracks; median of {args.repeat} run(s)")
    print(table(seconds, args.periods))
    floor_ratio, per_row_ratio = seconds["store"] / seconds["floor"], seconds["per_row"] / seconds["store"]
    checks_ratio = seconds["checked"] / seconds["store"]
    print(f"store_ranking / COPY floor: {floor_ratio:.2f}x (target <= {MAX_FLOOR_RATIO}x)")
    print(f"per-row / store_ranking:    {per_row_ratio:.1f}x (target >= {MIN_PER_ROW_RATIO:g}x)")
    print(f"with / without the quality checks: {checks_ratio:.2f}x (target <= {MAX_CHECKS_RATIO:.2f}x; "
          f"{1000 * (seconds['checked'] - seconds['store']) / args.periods:.2f} ms a period)")
    print(f"... in a new session per period, as a sync task stores: {seconds['checked_session'] / seconds['store_session']:.2f}x "
          f"({1000 * (seconds['checked_session'] - seconds['store_session']) / args.periods:.2f} ms a period; not judged)")
    if floor_ratio > MAX_FLOOR_RATIO:
        problems.append(f"store_ranking is {floor_ratio:.2f}x the COPY floor (target <= {MAX_FLOOR_RATIO}x)")
    if per_row_ratio < MIN_PER_ROW_RATIO:
        problems.append(f"the per-row way is only {per_row_ratio:.1f}x store_ranking (target >= {MIN_PER_ROW_RATIO:g}x)")
    if checks_ratio > MAX_CHECKS_RATIO:
        problems.append(f"the quality checks make store_ranking {checks_ratio:.2f}x (target <= {MAX_CHECKS_RATIO:.2f}x)")
    for problem in problems:
        print(f"MISSED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
