"""The quality reads (chartsync.store.quality_reports) and their words (chartsync.services.quality), on SQLite
and PostgreSQL, with hand-made quality rows (as the sync writes them: one per stored ranking)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert

from chartsync.core.paging import PageRequest
from chartsync.core.schedule import ScheduleNotFound
from chartsync.services import quality
from chartsync.store import quality_reports
from chartsync.store.tables import chart, chart_ranking, chart_ranking_quality, chart_sync_schedule
from conftest import migrated_chart_engine

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
FIRST = date(2026, 11, 1)


def quality_row(ranking_id: int, chart_id: int, period: date, flags: list[str], checked_at: datetime = NOW,
                **measures) -> dict:
    """A chart_ranking_quality row: clean measures unless given."""
    return {"ranking_id": ranking_id, "chart_id": chart_id, "period": period, "entry_count": 200,
            "expected_count": 200, "missing_positions": 0, "no_streams_share": 0.0, "new_share": 0.05,
            "usual_new_share": 0.05, "previous_checked": 190, "previous_mismatches": 0, "flags": flags,
            "flagged": bool(flags), "checked_at": checked_at} | measures


def store_rankings(conn, chart_id: int, periods: list[date], checks: dict[date, dict] | None = None) -> dict:
    """Rankings of ``periods``, with the quality rows ``checks`` gives by period; period -> ranking id."""
    ids = {}
    for period in periods:
        ids[period] = conn.execute(insert(chart_ranking).values(
            chart_id=chart_id, period=period, ranking_date=period.isoformat(), entry_count=200,
            fetched_at=NOW)).inserted_primary_key[0]
    for period, row in (checks or {}).items():
        conn.execute(insert(chart_ranking_quality).values(quality_row(ids[period], chart_id, period, **row)))
    return ids


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    """Chart 1 (scheduled): 10 daily rankings from FIRST, the first two stored before the checks, three
    flagged; chart 2 (not scheduled): 2 rankings, one flagged a week ago."""
    engine = migrated_chart_engine(request, tmp_path, f"quality_{tmp_path.name[-20:].lower().replace('-', '_')}")
    days = [FIRST + timedelta(days=i) for i in range(10)]
    with engine.begin() as conn:
        for i, slug in ((1, "spotify-top-200-global-daily"), (2, "deezer-top-100-fr-daily")):
            conn.execute(insert(chart).values(id=i, slug=slug, name=f"Chart {i}", platform="spotify",
                                              frequency="daily", max_results=200, created_at=NOW))
        conn.execute(insert(chart_sync_schedule).values(id=7, chart_id=1, sync_frequency="daily",
                                                        history_start=FIRST, created_at=NOW, updated_at=NOW))
        checks = {d: {"flags": []} for d in days[2:]}
        checks[days[3]] = {"flags": ["short", "gaps"], "entry_count": 143, "missing_positions": 57}
        checks[days[6]] = {"flags": ["churn"], "new_share": 0.4, "usual_new_share": 0.05}
        checks[days[9]] = {"flags": ["short"], "entry_count": 190, "checked_at": NOW - timedelta(hours=2)}
        store_rankings(conn, 1, days, checks)
        store_rankings(conn, 2, days[:2], {days[0]: {"flags": ["missing_streams"], "no_streams_share": 0.3,
                                                     "checked_at": NOW - timedelta(days=7)},
                                           days[1]: {"flags": []}})
    yield engine
    engine.dispose()


def test_a_charts_summary_counts_stored_checked_flagged_and_each_flag(engine):
    summary = quality_reports.chart_quality(engine, 1)
    assert (summary.rankings_stored, summary.rankings_checked, summary.rankings_flagged) == (10, 8, 3)
    assert summary.flag_counts == {"short": 2, "gaps": 1, "missing_streams": 0, "churn": 1, "previous_mismatch": 0}
    assert summary.last_flagged_period == FIRST + timedelta(days=9)
    assert summary.last_checked_at == NOW
    empty = quality_reports.chart_quality(engine, 99)
    assert (empty.rankings_stored, empty.rankings_checked, empty.rankings_flagged) == (0, 0, 0)
    assert empty.last_checked_at is None and set(empty.flag_counts.values()) == {0}


def test_flagged_rankings_newest_first_paged_and_by_flag(engine):
    page = quality_reports.flagged_rankings(engine, 1, paging=PageRequest(2))
    assert page.total == 3 and [r.period.day for r in page.items] == [10, 7]
    assert page.items[0].checks.flags == ("short",) and page.items[0].checks.entry_count == 190
    second = quality_reports.flagged_rankings(engine, 1, paging=PageRequest(2, 2))
    assert [(r.period.day, r.checks.flags) for r in second.items] == [(4, ("short", "gaps"))]
    assert [r.period.day for r in quality_reports.flagged_rankings(engine, 1, flag="short").items] == [10, 4]
    assert quality_reports.flagged_rankings(engine, 1, flag="previous_mismatch").total == 0


def test_one_rankings_row_or_none_before_the_checks(engine):
    row = quality_reports.ranking_quality(engine, 1, FIRST + timedelta(days=3))
    assert (row.checks.flags, row.flagged, row.checks.entry_count, row.checks.missing_positions) == (
        ("short", "gaps"), True, 143, 57)
    assert row.checked_at == NOW
    assert quality_reports.ranking_quality(engine, 1, FIRST) is None


def test_by_period_across_charts_and_for_one(engine):
    fleet = quality_reports.quality_by_period(engine, FIRST, FIRST + timedelta(days=9))
    assert [(r.period.day, r.stored, r.checked, r.flagged) for r in fleet[:4]] == [
        (1, 2, 1, 1), (2, 2, 1, 0), (3, 1, 1, 0), (4, 1, 1, 1)]
    assert (sum(r.checked for r in fleet), sum(r.flagged for r in fleet)) == (10, 4)
    one = quality_reports.quality_by_period(engine, FIRST + timedelta(days=1), FIRST + timedelta(days=3), 1)
    assert [(r.period.day, r.clean, r.flagged, r.unchecked) for r in one] == [(2, 0, 0, 1), (3, 1, 0, 0), (4, 0, 1, 0)]


def test_flagged_since_per_chart_for_the_digest(engine):
    day = quality_reports.flagged_since(engine, NOW - timedelta(days=1))
    assert [(c.slug, c.schedule_id, c.rankings_flagged) for c in day] == [("spotify-top-200-global-daily", 7, 3)]
    assert day[0].flag_counts["short"] == 2 and day[0].flag_counts["churn"] == 1
    week = quality_reports.flagged_since(engine, NOW - timedelta(days=8))
    assert [(c.slug, c.schedule_id, c.rankings_flagged) for c in week] == [
        ("spotify-top-200-global-daily", 7, 3), ("deezer-top-100-fr-daily", None, 1)]
    assert quality_reports.flagged_since(engine, NOW + timedelta(seconds=1)) == []


# -- the service: the same summary for every door, flags in words -----------------------------------------------
def test_schedule_quality_and_the_flags_in_words(engine):
    report = quality.schedule_quality(engine, 7, paging=PageRequest(5))
    assert (report.slug, report.summary.rankings_flagged, report.unchecked) == ("spotify-top-200-global-daily", 3, 2)
    assert [str(n) for r in report.rankings.items for n in r.notes] == [
        "short: 190 of 200 entries", "churn: 40% new entries, usually 5%", "short: 143 of 200 entries",
        "gaps: 57 positions missing"]
    assert quality.slug_quality(engine, "spotify-top-200-global-daily", flag="churn").rankings.total == 1
    with pytest.raises(ScheduleNotFound):
        quality.slug_quality(engine, "deezer-top-100-fr-daily")
    with pytest.raises(ValueError, match="flag must be one of"):
        quality.schedule_quality(engine, 7, flag="bogus")


def test_ranking_quality_is_flagged_clean_or_not_checked(engine):
    flagged = quality.ranking_quality(engine, 2, FIRST)
    assert flagged.status == "flagged" and [str(n) for n in flagged.notes] == [
        "missing_streams: 30% of entries without streams (at most 5% expected)"]
    assert [m.label for m in flagged.measures if m.raised] == ["Without streams"]
    clean = quality.ranking_quality(engine, 1, FIRST + timedelta(days=2))
    assert (clean.status, clean.flags, clean.notes) == ("clean", [], [])
    assert [m.text for m in clean.measures][:2] == ["200 of 200", "none: positions 1 to the last are all there"]
    unchecked = quality.ranking_quality(engine, 1, FIRST)
    assert (unchecked.status, unchecked.checks, unchecked.measures) == ("not-checked", None, [])


def test_quality_by_period_in_buckets(engine):
    days = quality.quality_by_period(engine, 30, now=NOW)
    assert days.size == "day" and (days.checked, days.flagged) == (10, 4)
    assert days.buckets[:2] == [(FIRST, [0.0, 1.0, 1.0]), (FIRST + timedelta(days=1), [1.0, 0.0, 1.0])]
    months = quality.quality_by_period(engine, 365, chart_id=1, now=NOW)
    assert months.size == "month" and months.buckets == [(FIRST, [5.0, 3.0, 2.0])]
