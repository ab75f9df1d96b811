"""services.budget on a SQLite chart DB: the quota report every door shows, and the estimates of a new
schedule's history, a bulk add and a heal (periods x pages, beside the quota last read and the reserve)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from chartsync.core.calendar import Frequency, count_periods_between, history_start, latest_complete_period
from chartsync.core.quota import QuotaReading
from chartsync.seam import orchestration
from chartsync.services import budget, gaps, schedules
from chartsync.store import quota as quota_store
from chartsync.store.tables import chart, chart_sync_schedule
from conftest import migrated_sqlite

NOW = datetime.now(UTC)
TODAY = NOW.date()


@pytest.fixture
def engine(tmp_path, monkeypatch):
    monkeypatch.delenv("CHARTSYNC_QUOTA_RESERVE", raising=False)
    monkeypatch.setattr(orchestration, "set_paused", lambda dag_id, paused: False)  # no DAG parsed
    monkeypatch.setattr(orchestration, "catchup_fronts", lambda dag_ids: {})
    engine = migrated_sqlite(tmp_path / "chart.db")
    with engine.begin() as conn:
        for chart_id, slug, frequency, size in ((1, "big-daily", "daily", 200), (2, "small-daily", "daily", 50),
                                                (3, "weekly", "weekly", 100)):
            conn.execute(insert(chart).values(id=chart_id, slug=slug, name=slug, platform="spotify",
                                              frequency=frequency, max_results=size,
                                              publication_weekday=4 if frequency == "weekly" else None,
                                              created_at=NOW))
    yield engine
    engine.dispose()


def year_of_days() -> int:
    return count_periods_between(Frequency.DAILY, history_start(Frequency.DAILY, TODAY),
                                 latest_complete_period(Frequency.DAILY, NOW).start)


def test_the_report_never_seen_then_below_the_reserve_with_the_top_spenders(engine):
    report = budget.report(engine, NOW)
    assert report.state == "never seen" and report.as_dict()["remaining"] is None and report.charts == []
    quota_store.record_reading(engine, QuotaReading(900, NOW - timedelta(minutes=5), {}), "response")
    quota_store.add_calls(engine, 1, 300, TODAY)
    quota_store.add_calls(engine, 2, 40, TODAY - timedelta(days=3))
    quota_store.add_calls(engine, None, 70, TODAY)
    quota_store.add_calls(engine, 2, 5_000, TODAY - timedelta(days=45))  # outside the 30 days
    found = budget.report(engine, NOW).as_dict()
    assert found["remaining"] == 900 and found["below_reserve"] is True
    assert found["state"] == "below the reserve of 1,000: history waits, the newest periods go on"
    assert (found["spent_24h"], found["spent_30d"]) == (370, 410)
    assert found["charts"] == [{"chart_id": 1, "slug": "big-daily", "calls": 300},
                               {"chart_id": None, "slug": None, "calls": 70},
                               {"chart_id": 2, "slug": "small-daily", "calls": 40}]


def test_a_new_schedule_with_a_year_of_history_costs_its_periods_times_its_pages(engine):
    quota_store.record_reading(engine, QuotaReading(1_500, NOW, {}), "usage")
    change = schedules.create_schedule(engine, 1, actor="t")
    periods = year_of_days()
    assert 360 <= periods <= 366
    assert change.estimate.calls == periods * 2  # 200 entries: two pages a period
    assert change.estimate.remaining == 1_500 and change.estimate.leaves == 1_500 - periods * 2
    assert "below the reserve of 1,000" in change.estimate.warning
    assert "would leave" in budget.describe(change.estimate)
    quiet = schedules.create_schedule(engine, 2, actor="t", sync_historical_data=False)
    assert quiet.estimate.calls == 1 and quiet.estimate.warning is None  # the newest period, one page


def test_a_bulk_add_estimate_leaves_out_charts_it_would_refuse(engine):
    with engine.begin() as conn:
        conn.execute(insert(chart_sync_schedule).values(chart_id=2, is_active=True, sync_frequency="daily",
                                                        history_start=TODAY, created_at=NOW, updated_at=NOW))
    found = schedules.add_estimate(engine, [1, 2, 3, 99], {"sync_historical_data": True}, now=NOW)
    weeks = count_periods_between(Frequency.WEEKLY, history_start(Frequency.WEEKLY, TODAY, 4),
                                  latest_complete_period(Frequency.WEEKLY, NOW, 4).start, 4)
    assert found.calls == year_of_days() * 2 + weeks  # chart 2 is scheduled, 99 unknown
    assert found.remaining is None and found.warning is None
    assert "not known yet" in budget.describe(found)
    assert schedules.add_estimate(engine, [1, 3], {"sync_historical_data": False, "sync_immediately": False}).calls == 0


def test_a_heal_costs_its_gap_periods_times_the_pages(engine, monkeypatch):
    first = TODAY - timedelta(days=10)
    with engine.begin() as conn:
        conn.execute(insert(chart_sync_schedule).values(chart_id=1, is_active=True, sync_frequency="daily",
                                                        history_start=first, created_at=NOW, updated_at=NOW))
    quota_store.record_reading(engine, QuotaReading(15, NOW, {}), "usage")
    before = gaps.heal_estimate(engine, ["big-daily"])
    missing = sum(g.periods for g in gaps.list_gaps(engine, slug="big-daily"))
    assert missing >= 9 and before.calls == missing * 2
    assert before.leaves < 0 and "more than the 15 left" in before.warning
    monkeypatch.setattr(orchestration, "backfills", lambda dag_id, active_only=False: [])
    monkeypatch.setattr(orchestration, "rerun_succeeded", lambda dag_id, first, last: [])
    monkeypatch.setattr(orchestration, "catchup_fronts", lambda dag_ids: {d: None for d in dag_ids})
    monkeypatch.setattr(orchestration, "create_backfill", lambda dag_id, first, last, user, reprocess:
                        orchestration.BackfillInfo(7, dag_id, first, last, reprocess, False, False))
    (result,) = gaps.heal(engine, ["big-daily"], actor="t")
    assert result.status == "created" and result.estimate == before
    assert f"about {before.calls} calls" in result.estimate.warning


def test_an_unknown_chart_size_costs_two_pages_a_period(engine):
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=4, slug="unsized", name="u", platform="deezer", frequency="daily",
                                          created_at=NOW))
    assert budget.estimate(engine, {4: 10}).calls == 20
    assert budget.estimate(engine, {}).calls == 0
