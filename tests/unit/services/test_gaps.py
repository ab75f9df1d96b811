"""Expected periods, gap ranges and coverage: pure parts with plain values, SQL on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import random

import pytest
from sqlalchemy import delete, insert, select

from chartsync.core.gaps import runs_of
from chartsync.core.schedule import ScheduleNotFound
from chartsync.seam import orchestration
from chartsync.services import coverage, gaps
from chartsync.services.charts import ChartNotFound
from chartsync.store import gaps as gap_store
from chartsync.store import schedules as schedule_store
from conftest import migrated_chart_engine
from chartsync.store.tables import chart, chart_expected_period, chart_ranking, chart_sync_audit, chart_sync_schedule
from chartsync.core.calendar import Frequency
from chartsync.core.schedule import ScheduleConfig

TODAY = date(2026, 11, 24)


def config(**over) -> ScheduleConfig:
    values = dict(schedule_id=1, chart_id=1, slug="c", chart_name="C", platform="deezer", country_code=None,
                  chart_frequency="weekly", frequency=Frequency.WEEKLY, custom_interval_hours=None,
                  cron_expression=None, weekday=0, is_active=True, sync_immediately=True,
                  sync_historical_data=True, fetch_track_metadata=True, history_start=date(2025, 11, 24),
                  deadline_hours=None, created_on=date(2026, 11, 24))
    values.update(over)
    return ScheduleConfig(**values)


def test_api_list_wins_and_the_difference_is_reported():
    cfg = config()
    first, last = gaps.history_window(cfg, TODAY)
    assert (first, last) == (date(2025, 11, 24), date(2026, 11, 16))
    mondays = [first + timedelta(weeks=i) for i in range(52)]
    holiday = date(2025, 12, 22)
    api = [f"{d.isoformat()}T00:00:00+00:00" for d in mondays if d != holiday]
    sources = gaps.period_sources(cfg, api, TODAY)
    assert len(sources.calendar) == 52
    assert holiday not in sources.expected and len(sources.expected) == 51
    assert sources.calendar_only == [holiday]
    assert sources.api_only == []


def test_calendar_is_used_when_the_api_cannot_be_asked():
    sources = gaps.period_sources(config(), None, TODAY)
    assert sources.expected == sources.calendar
    assert sources.calendar_only == [] and sources.api_only == []


def test_window_without_history_starts_at_creation():
    cfg = config(frequency=Frequency.DAILY, chart_frequency="daily", weekday=None, sync_historical_data=False,
                 created_on=date(2026, 11, 20))
    assert gaps.history_window(cfg, TODAY) == (date(2026, 11, 20), date(2026, 11, 23))


def test_backfill_command_closes_the_range():
    gap = gaps.GapRange(1, "spotify-top-200-global-daily", date(2026, 1, 3), date(2026, 1, 5), 3)
    assert gap.backfill_command == ("airflow backfill create --dag-id chart_sync__spotify-top-200-global-daily "
                                    "--from-date 2026-01-03 --to-date 2026-01-05 --reprocess-behavior failed")


@pytest.fixture(autouse=True)
def no_chart_dag_in_airflow(monkeypatch):
    """What an Airflow without the test's chart DAGs answers: no catchup front (FakeAirflow below gives
    fronts; the real scheduler's are tested by tests/integration/test_heal_during_catchup.py)."""
    monkeypatch.setattr(orchestration, "catchup_fronts", lambda dag_ids: {})


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    engine = migrated_chart_engine(request, tmp_path, "gaps_unit")
    yield engine
    engine.dispose()


def seed(engine, slug: str, chart_id: int, first: date, stored: list[date], *, frequency: str = "daily",
         weekday: int | None = None, audited: list[tuple[date, bool, bool]] | None = None, active: bool = True):
    """A chart and its schedule from ``first``; ``audited``: (period, in_calendar, in_api) rows of a gap audit."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=chart_id, slug=slug, name=slug, platform="x", frequency=frequency,
                                          publication_weekday=weekday, created_at=now))
        conn.execute(insert(chart_sync_schedule).values(
            chart_id=chart_id, is_active=active, sync_frequency=frequency, history_start=first,
            created_at=now, updated_at=now))
        if audited:
            api_known = any(in_api for _, _, in_api in audited)
            conn.execute(insert(chart_expected_period), [
                {"chart_id": chart_id, "period": d, "in_calendar": cal, "in_api": api,
                 "expected": api if api_known else cal, "refreshed_at": now} for d, cal, api in audited])
        if stored:
            conn.execute(insert(chart_ranking), [
                {"chart_id": chart_id, "period": d, "ranking_date": d.isoformat(), "entry_count": 1,
                 "fetched_at": now} for d in stored])


def days_from(first: date, n: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(n)]


def test_live_gaps_are_merged_into_ranges_for_all_active_charts_at_once(engine):
    days = days_from(TODAY - timedelta(days=30), 30)  # the window: 30 days up to yesterday
    holes = {days[0], days[5], days[6], days[7], days[20], days[29]}
    seed(engine, "a", 1, days[0], [d for d in days if d not in holes],
         audited=[(d, True, True) for d in days])
    seed(engine, "c", 3, days[0], days)  # complete, never audited: the calendar alone
    seed(engine, "d", 4, days[0], [], active=False)  # inactive: not in the fleet's list

    found = gaps.list_gaps(engine, today=TODAY)
    assert [(g.slug, g.start, g.end, g.periods) for g in found] == [
        ("a", days[0], days[0], 1), ("a", days[5], days[7], 3), ("a", days[20], days[20], 1),
        ("a", days[29], days[29], 1)]
    cov = gaps.coverages(engine, [1, 3, 4], today=TODAY)
    assert (cov[1].expected_periods, cov[1].stored_periods, cov[1].coverage_percent) == (30, 24, 80.0)
    assert cov[3].coverage_percent == 100.0 and cov[4].stored_periods == 0
    assert [g.periods for g in gaps.list_gaps(engine, slug="d", today=TODAY)] == [30]  # one chart: active or not

    with engine.begin() as conn:  # a deletion shows at once: no audit in between
        conn.execute(delete(chart_ranking).where(chart_ranking.c.chart_id == 3, chart_ranking.c.period == days[10]))
    assert [(g.slug, g.start) for g in gaps.list_gaps(engine, slug="c", today=TODAY)] == [("c", days[10])]


def test_a_schedule_created_today_expects_nothing_yet(engine):
    seed(engine, "new", 1, TODAY, [])
    assert gaps.list_gaps(engine, today=TODAY) == []
    assert gaps.chart_coverage(engine, 1, today=TODAY).coverage_percent == 100.0
    config = ScheduleConfig.from_row(schedule_store.load_rows(engine, "new")[0])
    assert {c.status for c in coverage.coverage_strip(engine, config, today=TODAY)} <= {"outside-window", "not-yet-due"}


def test_the_calendar_expects_the_periods_the_audit_has_not_seen(engine):
    days = days_from(TODAY - timedelta(days=10), 10)
    seed(engine, "a", 1, days[0], days[:8], audited=[(d, True, True) for d in days[:8]])  # audited 2 days ago
    assert [(g.start, g.end) for g in gaps.list_gaps(engine, today=TODAY)] == [(days[8], days[9])]
    assert gaps.coverages(engine, [1], today=TODAY)[1].expected_periods == 10


def test_the_api_wins_a_skipped_week_is_no_gap_an_off_calendar_week_is(engine):
    first = date(2026, 9, 7)  # a Monday
    mondays = [first + timedelta(weeks=i) for i in range(11)]  # up to 2026-11-16, the last complete week
    skipped, moved = mondays[3], mondays[6]
    off = moved + timedelta(days=1)  # the API published that week on Tuesday
    audited = [(d, True, d not in (skipped, moved)) for d in mondays] + [(off, False, True)]
    stored = [d for d in mondays if d not in (skipped, moved, mondays[8])]
    seed(engine, "w", 1, first, stored, frequency="weekly", weekday=0, audited=audited)
    found = gaps.list_gaps(engine, today=TODAY)
    assert [(g.start, g.end, g.periods) for g in found] == [(off, off, 1), (mondays[8], mondays[8], 1)]
    cov = gaps.chart_coverage(engine, 1, today=TODAY)
    assert (cov.expected_periods, cov.stored_periods) == (10, 8)
    assert cov.calendar_only == [skipped.isoformat(), moved.isoformat()] and cov.api_only == [off.isoformat()]


def test_strip_card_and_gap_table_agree_with_the_list(engine):
    days = days_from(TODAY - timedelta(days=40), 40)
    rng = random.Random(3)
    seed(engine, "a", 1, days[0], [d for d in days if rng.random() > 0.3])
    config = ScheduleConfig.from_row(schedule_store.load_rows(engine, "a")[0])
    view = coverage.schedule_coverage(engine, config, today=TODAY)
    counts = {s: sum(1 for c in view.cells if c.status == s) for s in coverage.STATUSES}
    assert counts["synced"] == view.coverage.stored_periods
    assert counts["missing"] + counts["failed"] == view.coverage.gap_periods == sum(g.periods for g in view.gaps)
    assert view.gaps == gaps.list_gaps(engine, slug="a", today=TODAY)


def test_the_sql_ranges_and_counts_match_a_plain_merge(engine):
    rng = random.Random(7)
    for chart_id in range(1, 6):
        first = TODAY - timedelta(days=rng.randint(5, 60))
        seed(engine, f"c{chart_id}", chart_id, first, [d for d in days_from(first, 60) if rng.random() > 0.4])
    windows = gaps.windows(engine, today=TODAY)
    with engine.connect() as conn:
        stored = {(r.chart_id, r.period) for r in conn.execute(select(chart_ranking.c.chart_id, chart_ranking.c.period))}
    for w in windows:
        runs = runs_of(w.chart_id, ((d, (w.chart_id, d) in stored) for d in days_from(w.first, (w.last - w.first).days + 1)))
        live = [r for r in gap_store.live_runs(engine, [w])]
        assert [r for r in live if not r.stored] == [r for r in runs if not r.stored]
        assert sum(r.periods for r in live if r.stored) == sum(r.periods for r in runs if r.stored)
    assert gap_store.live_runs(engine, windows) == [r for w in windows for r in gap_store.live_runs(engine, [w])]


def test_an_unknown_chart_or_one_without_a_schedule_is_refused(engine):
    seed(engine, "a", 1, TODAY - timedelta(days=3), [])
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=2, slug="b", name="b", platform="x", created_at=datetime.now(UTC)))
    with pytest.raises(ChartNotFound):
        gaps.list_gaps(engine, slug="no-such-chart")
    with pytest.raises(ScheduleNotFound):
        gaps.list_gaps(engine, slug="b")
    with pytest.raises(ChartNotFound):
        gaps.heal(engine, ["no-such-chart"], actor="t")
    with pytest.raises(ScheduleNotFound):
        gaps.heal(engine, ["a", "b"], actor="t")


class FakeAirflow:
    """orchestration's backfill calls, recorded: one active backfill per DAG, as Airflow allows."""

    def __init__(self, monkeypatch):
        self.created: list[tuple] = []
        self.active: dict[str, orchestration.BackfillInfo] = {}
        self.cleared: list[tuple] = []
        self.fronts: dict[str, date | None] = {}  # a DAG's catchup front; absent: its catchup is over
        self.refuse: dict[str, Exception] = {}  # what Airflow raises for a DAG's backfill
        monkeypatch.setattr(orchestration, "catchup_fronts", lambda dag_ids: {d: self.fronts.get(d) for d in dag_ids})
        monkeypatch.setattr(orchestration, "create_backfill", self.create)
        monkeypatch.setattr(orchestration, "rerun_succeeded",
                            lambda dag_id, first, last: self.cleared.append((first, last)) or [])
        monkeypatch.setattr(orchestration, "backfills",
                            lambda dag_id, active_only=False: [self.active[dag_id]] if dag_id in self.active else [])

    def create(self, dag_id, first, last, user, reprocess="completed", max_active_runs=4):
        if dag_id in self.refuse:
            raise self.refuse[dag_id]
        front = self.fronts.get(dag_id)
        assert front is None or last < front, f"a backfill up to {last} races the catchup at {front}"
        if dag_id in self.active:
            raise orchestration.BackfillAlreadyRunning(dag_id)
        self.created.append((dag_id, first, last, reprocess))
        info = orchestration.BackfillInfo(len(self.created), dag_id, first, last, reprocess, False, False)
        self.active[dag_id] = info
        return info

    def complete(self, dag_id):
        self.active.pop(dag_id)


def test_heal_backfills_the_first_range_and_queues_the_others(engine, monkeypatch):
    airflow = FakeAirflow(monkeypatch)
    days = days_from(TODAY - timedelta(days=20), 20)
    holes = [days[2], days[3], days[8], days[14], days[15], days[16]]
    seed(engine, "a", 1, days[0], [d for d in days if d not in holes])
    dag = "chart_sync__a"

    (result,) = gaps.heal(engine, ["a"], actor="tester", today=TODAY)
    assert result.status == "created" and result.backfill_id == 1
    assert airflow.created == [(dag, days[2], days[3], "failed")]
    assert airflow.cleared == [(days[2], days[3]), (days[8], days[8]), (days[14], days[16])]
    assert [(g.start, g.end) for g in result.queued] == [(days[8], days[8]), (days[14], days[16])]
    assert [(g.start, g.heal) for g in gaps.list_gaps(engine, slug="a", today=TODAY)] == [
        (days[2], "running"), (days[8], "queued"), (days[14], "queued")]
    assert gaps.heal(engine, ["a"], actor="tester", today=TODAY)[0].status == "already-running"
    assert gaps.advance_heals(engine, today=TODAY) == []  # the first backfill is still running

    with engine.begin() as conn:  # the backfill synced its two periods; a sync outside Airflow did one more
        conn.execute(insert(chart_ranking), [{"chart_id": 1, "period": d, "ranking_date": d.isoformat(),
                                              "entry_count": 1, "fetched_at": datetime.now(UTC)}
                                             for d in (days[2], days[3], days[15])])
    airflow.complete(dag)
    (started,) = gaps.advance_heals(engine, today=TODAY)
    assert airflow.created[1:] == [(dag, days[8], days[8], "failed")]
    assert [(g.start, g.end) for g in started.queued] == [(days[14], days[14]), (days[16], days[16])]
    airflow.complete(dag)
    gaps.advance_heals(engine, today=TODAY)
    airflow.complete(dag)
    gaps.advance_heals(engine, today=TODAY)
    assert [c[1:3] for c in airflow.created] == [(days[2], days[3]), (days[8], days[8]), (days[14], days[14]),
                                                 (days[16], days[16])]  # never a stored period
    airflow.complete(dag)
    assert gaps.advance_heals(engine, today=TODAY) == []
    with engine.connect() as conn:
        audited = conn.execute(select(chart_sync_audit.c.action, chart_sync_audit.c.actor)).all()
    assert audited == [("heal", "tester")] * 4


def test_periods_from_the_catchup_front_on_wait_for_it_and_are_never_healed(engine, monkeypatch):
    airflow = FakeAirflow(monkeypatch)
    days = days_from(TODAY - timedelta(days=30), 30)
    stored = days[:5] + days[8:12]  # the catchup is at days[12]; days[5..7] were skipped by Airflow
    seed(engine, "a", 1, days[0], stored)
    airflow.fronts["chart_sync__a"] = days[12]

    report = gaps.gap_report(engine, slug="a", today=TODAY)
    assert [(g.start, g.end, g.periods) for g in report.gaps] == [(days[5], days[7], 3)]
    (wait,) = report.waiting
    assert (wait.front, wait.first, wait.last, wait.periods) == (days[12], days[12], days[29], 18)
    assert "wait for the catchup" in wait.message

    (result,) = gaps.heal(engine, ["a"], actor="tester", today=TODAY)
    assert result.status == "created" and airflow.created == [("chart_sync__a", days[5], days[7], "failed")]
    assert result.waiting == wait and "18 period(s)" in result.message
    config = ScheduleConfig.from_row(schedule_store.load_rows(engine, "a")[0])
    view = coverage.schedule_coverage(engine, config, today=TODAY)
    assert view.gaps == gaps.list_gaps(engine, slug="a", today=TODAY) and view.waiting == wait
    assert sum(1 for c in view.cells if c.status == coverage.WAITING) == 18


def test_a_gap_range_across_the_front_is_cut_there(engine, monkeypatch):
    airflow = FakeAirflow(monkeypatch)
    days = days_from(TODAY - timedelta(days=20), 20)
    seed(engine, "a", 1, days[0], days[:4])  # days[4..19] missing; the catchup is at days[9]
    airflow.fronts["chart_sync__a"] = days[9]
    report = gaps.gap_report(engine, slug="a", today=TODAY)
    assert [(g.start, g.end, g.periods) for g in report.gaps] == [(days[4], days[8], 5)]
    assert (report.waiting[0].first, report.waiting[0].periods) == (days[9], 11)


def test_heal_during_a_catchup_with_nothing_behind_it_leaves_everything_to_it(engine, monkeypatch):
    airflow = FakeAirflow(monkeypatch)
    days = days_from(TODAY - timedelta(days=10), 10)
    seed(engine, "a", 1, days[0], days[:3])
    airflow.fronts["chart_sync__a"] = days[3]
    (result,) = gaps.heal(engine, ["a"], actor="tester", today=TODAY)
    assert result.status == "nothing-to-heal" and airflow.created == []
    assert result.message.startswith("no gaps behind the catchup; 7 period(s)")


def test_a_dag_airflow_does_not_know_is_never_backfilled(engine, monkeypatch):
    airflow = FakeAirflow(monkeypatch)
    monkeypatch.setattr(orchestration, "catchup_fronts", lambda dag_ids: {})
    days = days_from(TODAY - timedelta(days=10), 10)
    seed(engine, "a", 1, days[0], days[:3])
    (result,) = gaps.heal(engine, ["a"], actor="tester", today=TODAY)
    assert result.status == "dag-not-parsed" and airflow.created == []


def test_one_chart_refused_by_airflow_is_its_own_result_and_the_others_heal(engine, monkeypatch):
    airflow = FakeAirflow(monkeypatch)
    days = days_from(TODAY - timedelta(days=10), 10)
    for chart_id, slug in enumerate(("a", "b", "c"), start=1):
        seed(engine, slug, chart_id, days[0], days[:2] + days[4:])
    airflow.refuse["chart_sync__a"] = orchestration.BackfillRefused("No runs to create for Dag chart_sync__a")
    airflow.refuse["chart_sync__b"] = RuntimeError("the metadata DB went away")
    results = {r.slug: r for r in gaps.heal(engine, None, actor="tester", today=TODAY)}
    assert (results["a"].status, results["b"].status, results["c"].status) == ("refused", "refused", "created")
    assert "No runs to create" in results["a"].message and "metadata DB went away" in results["b"].message
    assert airflow.created == [("chart_sync__c", days[2], days[3], "failed")]


def test_heal_while_a_backfill_runs_queues_every_gap_and_starts_them_after_it(engine, monkeypatch):
    airflow = FakeAirflow(monkeypatch)
    days = days_from(TODAY - timedelta(days=12), 12)
    seed(engine, "a", 1, days[0], [d for d in days if d not in (days[2], days[7], days[8])])
    dag = "chart_sync__a"
    airflow.active[dag] = orchestration.BackfillInfo(99, dag, days[0], days[0], "none", False, False)  # by hand

    (result,) = gaps.heal(engine, ["a"], actor="tester", today=TODAY)
    assert result.status == "already-running" and airflow.created == []
    assert "2 gap range(s) queued behind it" in result.message
    assert [(g.start, g.heal) for g in gaps.list_gaps(engine, slug="a", today=TODAY)] == [
        (days[2], "queued"), (days[7], "queued")]
    assert gaps.advance_heals(engine, today=TODAY) == []  # Airflow still runs the other backfill
    airflow.complete(dag)
    (started,) = gaps.advance_heals(engine, today=TODAY)
    assert airflow.created == [(dag, days[2], days[2], "failed")] and started.queued[0].start == days[7]
    # a queued range's periods whose runs succeeded but whose rankings are gone are cleared to run again
    assert airflow.cleared == [(days[2], days[2]), (days[7], days[8])]
