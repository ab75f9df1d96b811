"""store.quota on SQLite and PostgreSQL: readings kept bounded, calls added per (day, chart) with NULL for no
chart, the sums the summary reads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from chartsync.core.quota import QuotaReading
from chartsync.core.timestamps import as_utc
from chartsync.store import quota
from chartsync.store.tables import chart_sync_api_calls, chart_sync_quota_reading
from conftest import migrated_chart_engine

DAY = date(2026, 3, 4)
NOON = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    engine = migrated_chart_engine(request, tmp_path, f"quota_{tmp_path.name[-20:].lower().replace('-', '_')}")
    yield engine
    engine.dispose()


def readings(engine) -> list[tuple[datetime, int | None, str]]:
    r = chart_sync_quota_reading.c
    with engine.connect() as conn:
        return [(as_utc(row.seen_at).astimezone(UTC), row.remaining, row.source)
                for row in conn.execute(select(r.seen_at, r.remaining, r.source).order_by(r.seen_at))]


def test_the_latest_reading_comes_back_in_utc_with_its_details(store):
    assert quota.latest_reading(store) is None
    quota.record_reading(store, QuotaReading(500, NOON, {"object": {"quota": {"remaining": 500}}}), "usage")
    quota.record_reading(store, QuotaReading(498, NOON + timedelta(minutes=1), {}), "response")
    latest = quota.latest_reading(store)
    assert latest == QuotaReading(498, NOON + timedelta(minutes=1), {})
    assert latest.seen_at.tzinfo is not None


def test_an_hour_keeps_its_first_and_its_newest_reading(store):
    for minute in range(0, 60, 10):
        quota.record_reading(store, QuotaReading(1_000 - minute, NOON + timedelta(minutes=minute), {}), "response")
    quota.record_reading(store, QuotaReading(900, NOON + timedelta(hours=1, minutes=5), {}), "response")
    assert [(seen.strftime("%H:%M"), left) for seen, left, _ in readings(store)] == [
        ("12:00", 1_000), ("12:50", 950), ("13:05", 900)]


def test_readings_older_than_35_days_are_dropped(store):
    quota.record_reading(store, QuotaReading(2_000, NOON - timedelta(days=36), {}), "usage")
    quota.record_reading(store, QuotaReading(1_900, NOON - timedelta(days=20), {}), "usage")
    quota.record_reading(store, QuotaReading(1_000, NOON, {}), "response")
    assert [left for _, left, _ in readings(store)] == [1_900, 1_000]


def test_an_unknown_source_is_refused(store):
    with pytest.raises(ValueError, match="source"):
        quota.record_reading(store, QuotaReading(1, NOON, {}), "guess")


def test_calls_add_up_per_day_and_chart_with_none_for_no_chart(store):
    quota.add_calls(store, 1, 3, DAY)
    quota.add_calls(store, 1, 2, DAY)
    quota.add_calls(store, None, 4, DAY)
    quota.add_calls(store, None, 1, DAY)
    quota.add_calls(store, 2, 7, DAY - timedelta(days=1))
    quota.add_calls(store, 2, 0, DAY)  # nothing spent: no row
    with store.connect() as conn:
        rows = conn.execute(select(chart_sync_api_calls).where(chart_sync_api_calls.c.day == DAY)).all()
    assert len(rows) == 2  # one per (day, chart), the NULL chart included
    assert quota.spent_by_chart(store, DAY) == {1: 5, None: 5}
    assert quota.spent_by_chart(store, DAY - timedelta(days=1)) == {1: 5, None: 5, 2: 7}
    assert quota.spent_since(store, DAY) == 10
    assert quota.spent_since(store, DAY - timedelta(days=1)) == 17
    assert quota.spent_since(store, DAY + timedelta(days=1)) == 0
    assert quota.first_day_since(store, DAY - timedelta(days=30)) == DAY - timedelta(days=1)


def test_record_writes_the_reading_and_the_calls_together(store):
    quota.record(store, QuotaReading(77, NOON, {}), "response", chart_id=3, calls=2)
    quota.record(store, None, "response", chart_id=3, calls=1, day=DAY)
    quota.record(store, None, "response", chart_id=3, calls=0)  # nothing to write
    assert quota.latest_reading(store).remaining == 77
    assert quota.spent_by_chart(store, DAY) == {3: 3}
    assert len(readings(store)) == 1
