"""The execution log by period (chartsync.store.history and services.history) on a SQLite chart DB."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert

from chartsync.core.paging import PageRequest
from chartsync.services import history as service
from chartsync.store import history
from chartsync.store.tables import chart, chart_ranking, chart_sync_execution, chart_sync_schedule
from conftest import migrated_sqlite

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
START = date(2026, 6, 1)  # chart 1's history window (daily): 14 periods due by NOW (June 1-14)


def _try(chart_id: int, period: date | None, run: str, n: int, status: str, started: datetime, **more) -> dict:
    return {"chart_id": chart_id, "dag_id": f"chart_sync__c{chart_id}", "run_id": run, "try_number": n,
            "period": period, "status": status, "started_at": started, "completed_at": started + timedelta(seconds=5),
            "duration_seconds": 5.0, "error": "boom" if status == "failed" else None, "rankings_created": 0, **more}


@pytest.fixture
def engine(tmp_path):
    """Chart 1 (daily, catching up): June 1-10 synced in the last hour of catchup, June 3 after two
    failed tries, June 11 failed twice, June 12 skipped, one try without a period; chart 2 (weekly):
    one period synced on schedule, one failed."""
    engine = migrated_sqlite(tmp_path / 'chart.db')
    with engine.begin() as conn:
        for i, freq in ((1, "daily"), (2, "weekly")):
            conn.execute(insert(chart).values(id=i, slug=f"c{i}", name=f"Chart {i}", platform="spotify",
                                              frequency=freq, publication_weekday=4 if i == 2 else None,
                                              created_at=NOW))
            conn.execute(insert(chart_sync_schedule).values(
                id=10 + i, chart_id=i, is_active=True, sync_frequency=freq,
                history_start=START if i == 1 else date(2026, 5, 1), created_at=NOW, updated_at=NOW))
        catchup = NOW - timedelta(minutes=50)
        rows = []
        for day in range(1, 11):
            period = date(2026, 6, day)
            started = catchup + timedelta(minutes=day)
            if day == 3:
                rows += [_try(1, period, "scheduled__2026-06-04", n, "failed", started - timedelta(minutes=n))
                         for n in (1, 2)]
                rows.append(_try(1, period, "scheduled__2026-06-04", 3, "success", started, rankings_created=1))
            else:
                rows.append(_try(1, period, f"scheduled__2026-06-{day + 1:02d}", 1, "success", started,
                                 rankings_created=1))
        rows += [_try(1, date(2026, 6, 11), "scheduled__2026-06-12", n, "failed", NOW - timedelta(minutes=5 - n))
                 for n in (1, 2)]
        rows.append(_try(1, date(2026, 6, 12), "scheduled__2026-06-13", 1, "skipped", NOW - timedelta(minutes=2)))
        rows.append(_try(1, None, "manual__x", 1, "failed", NOW - timedelta(days=3)))
        # chart 2: the week of May 29 stored 2 hours after publication (June 5, midnight), June 5 failed
        rows.append(_try(2, date(2026, 5, 29), "scheduled__2026-05-29", 1, "success",
                         datetime(2026, 6, 5, 2, 0, tzinfo=UTC), rankings_created=1))
        rows.append(_try(2, date(2026, 6, 5), "scheduled__2026-06-05", 1, "failed", NOW - timedelta(hours=2)))
        conn.execute(insert(chart_sync_execution), rows)
        conn.execute(insert(chart_ranking), [
            {"chart_id": 1, "period": date(2026, 6, d), "ranking_date": "x", "entry_count": 1, "fetched_at": NOW}
            for d in range(1, 11)] + [
            {"chart_id": 2, "period": date(2026, 5, 29), "ranking_date": "x", "entry_count": 1,
             "fetched_at": datetime(2026, 6, 5, 2, 0, 5, tzinfo=UTC)}])
    return engine


def test_history_is_one_row_per_period_newest_first_with_its_tries(engine):
    page = history.period_history(engine, 1, paging=PageRequest.number(1, 5))
    assert page.total == 13  # 12 periods and the try without a period
    assert [(str(p.period), p.status, p.tries) for p in page.items] == [
        ("2026-06-12", "skipped", 1), ("2026-06-11", "failed", 2), ("2026-06-10", "success", 1),
        ("2026-06-09", "success", 1), ("2026-06-08", "success", 1)]
    failed = page.items[1]
    assert [t["try_number"] for t in failed.attempts] == [2, 1]  # newest first, the latest included
    assert failed.run_id == "scheduled__2026-06-12" and failed.latest["error"] == "boom"
    last = history.period_history(engine, 1, paging=PageRequest.number(3, 5))
    assert [p.period for p in last.items][-1] is None  # the periodless try: last, a group of its own run
    assert last.items[-1].run_id == "manual__x" and last.items[-1].tries == 1


def test_history_tries_fold_into_their_period_and_latest_status_wins(engine):
    june3 = history.period_history(engine, 1, first=date(2026, 6, 3), last=date(2026, 6, 3)).items
    assert len(june3) == 1
    assert (june3[0].status, june3[0].tries, [t["status"] for t in june3[0].attempts]) == (
        "success", 3, ["success", "failed", "failed"])
    assert june3[0].first_stored_at is not None


def test_history_filters_by_latest_status_and_period_range(engine):
    failed = history.period_history(engine, 1, status="failed")
    assert [str(p.period) if p.period else None for p in failed.items] == ["2026-06-11", None]
    assert failed.total == 2  # June 3 failed twice but its latest try succeeded
    ranged = history.period_history(engine, 1, first=date(2026, 6, 9), last=date(2026, 6, 11))
    assert (ranged.total, [p.period.day for p in ranged.items]) == (3, [11, 10, 9])
    assert history.period_history(engine, 1, status="success", first=date(2026, 6, 11)).total == 0
    beyond = history.period_history(engine, 1, paging=PageRequest.number(9, 5))
    assert (beyond.items, beyond.total) == ([], 13)
    with pytest.raises(ValueError):
        history.period_history(engine, 1, status="bogus")


def test_failed_periods_count_what_the_status_filter_finds(engine):
    counts = history.period_counts(engine, [1, 2, 3], NOW - timedelta(hours=1))
    assert {chart_id: c.failed for chart_id, c in counts.items()} == {1: 2, 2: 1}
    assert history.period_counts(engine, [], NOW) == {}


def test_catchup_progress_counts_periods_due_done_rate_and_eta(engine):
    summary = service.schedule_periods(engine, [11, 12, 99], now=NOW)
    assert set(summary) == {11, 12}
    daily = summary[11].catchup
    # June 1-14 due; June 1-10 stored and June 12 skipped by the API are done, 11 of them in the last hour
    assert (daily.done, daily.total, daily.recent, summary[11].failed) == (11, 14, 11, 2)
    assert daily.running and daily.rate_per_hour == 11.0
    assert daily.eta == NOW + timedelta(hours=3 / 11)
    weekly = summary[12].catchup
    assert (weekly.done, weekly.total, weekly.running, weekly.eta) == (1, 6, False, None)  # Fridays May 1 - June 5


def test_period_outcomes_and_schedule_stats_by_month(engine):
    outcomes = history.period_outcomes(engine, 1)
    assert [o.period.day for o in outcomes] == list(range(1, 13))
    config = service.ScheduleConfig.from_row(service.schedule_store.rows_by_id(engine, [11])[0])
    cells = [(date(2026, 6, d), True if d <= 10 else False if d in (11, 13, 14) else None) for d in range(1, 15)]
    stats = service.schedule_period_stats(engine, config, cells)
    assert stats.coverage == [(date(2026, 6, 1), pytest.approx(100 * 10 / 13))]
    assert stats.outcomes == [(date(2026, 6, 1), [10.0, 1.0, 1.0])]
    lags = dict(stats.freshness["each period"])
    assert set(lags) == {date(2026, 6, d) for d in range(1, 11)}  # stored periods only
    assert lags[date(2026, 6, 10)] == (NOW - datetime(2026, 6, 11, tzinfo=UTC)).total_seconds()  # its ranking's


def test_fleet_stats_by_period_never_group_by_the_day_a_sync_ran(engine):
    """Every execution above ran within an hour of NOW, yet the figures spread over the periods."""
    stats = service.fleet_period_stats(engine, 30, now=NOW)
    assert stats.size == "day"
    outcomes = dict(stats.outcomes)
    assert len(outcomes) == 13  # 12 daily periods and the weekly May 29 (its June 5 is the daily one's too)
    assert outcomes[date(2026, 6, 5)] == [1.0, 1.0, 0.0]  # chart 1 synced it, chart 2 failed it
    coverage = dict(stats.coverage)
    assert coverage[date(2026, 6, 1)] == 100.0 and coverage[date(2026, 6, 11)] == 0.0
    assert coverage[date(2026, 5, 29)] == 100.0  # the weekly chart's one stored week
    weekly = dict(stats.freshness["weekly charts"])
    assert weekly == {date(2026, 5, 29): 2 * 3600 + 5.0}  # 2 h after publication on June 5
    by_month = service.fleet_period_stats(engine, 365, now=NOW)
    assert by_month.size == "month"
    assert [d for d, _ in by_month.outcomes] == [date(2026, 5, 1), date(2026, 6, 1)]


def test_a_period_waiting_for_the_quota_is_found_by_its_own_status(engine):
    waiting = datetime(2026, 6, 14, 8, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(insert(chart_sync_execution).values(
            _try(1, date(2026, 6, 13), "scheduled__2026-06-14", 1, "waiting_for_quota", waiting,
                 completed_at=None, duration_seconds=None)))
    found = history.period_history(engine, 1, status="waiting_for_quota")
    assert [(p.period, p.status) for p in found.items] == [(date(2026, 6, 13), "waiting_for_quota")]
    assert history.period_history(engine, 1, status="failed").total == 2  # a wait is no failure
