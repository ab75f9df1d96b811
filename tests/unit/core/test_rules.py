"""The overdue rule, statuses and rates (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from chartsync.core import calendar, rules

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("frequency", "hours", "cron", "expected"), [
    ("daily", None, None, timedelta(hours=36)),
    ("weekly", None, None, timedelta(days=8)),
    ("monthly", None, None, timedelta(days=33)),
    ("custom", 5, None, timedelta(hours=10)),
    ("custom", 744, None, timedelta(hours=1488)),
    ("cron", None, "0 6 * * *", timedelta(hours=48)),
    ("cron", None, "0 0 1 * *", timedelta(days=62)),  # the longest month counts
    ("cron", None, "not a cron", calendar.FALLBACK_GRACE),
    ("cron", None, "0 0 31 2 *", calendar.FALLBACK_GRACE),  # valid syntax, never fires
    ("custom", None, None, calendar.FALLBACK_GRACE),
    ("hourly", None, None, calendar.FALLBACK_GRACE),
])
def test_overdue_after(frequency, hours, cron, expected):
    assert calendar.overdue_after(frequency, hours, cron) == expected


def overdue(**kw) -> bool:
    args = {"is_active": True, "frequency": "daily", "last_success_at": None,
            "created_at": NOW - timedelta(days=100), "now": NOW} | kw
    return rules.is_overdue(**args)


def test_overdue_when_the_last_success_is_older_than_period_plus_grace():
    assert overdue(last_success_at=NOW - timedelta(hours=37))
    assert not overdue(last_success_at=NOW - timedelta(hours=35))
    assert not overdue(frequency="weekly", last_success_at=NOW - timedelta(days=7, hours=23))
    assert overdue(frequency="weekly", last_success_at=NOW - timedelta(days=8, hours=1))
    assert overdue(frequency="custom", custom_interval_hours=6, last_success_at=NOW - timedelta(hours=13))
    assert not overdue(frequency="custom", custom_interval_hours=6, last_success_at=NOW - timedelta(hours=11))


def test_never_succeeded_counts_from_creation_and_inactive_is_never_overdue():
    assert overdue(created_at=NOW - timedelta(days=2))
    assert not overdue(created_at=NOW - timedelta(hours=2))
    assert not overdue(is_active=False, created_at=NOW - timedelta(days=400))


def test_naive_timestamps_are_utc():
    naive = (NOW - timedelta(hours=37)).replace(tzinfo=None)
    assert overdue(last_success_at=naive)
    assert rules.freshness_seconds(naive, NOW) == 37 * 3600


def test_status_words_and_rates():
    assert rules.schedule_status(is_active=False, overdue=True) == "inactive"
    assert rules.schedule_status(is_active=True, overdue=True) == "overdue"
    assert rules.schedule_status(is_active=True, overdue=False) == "active"
    assert rules.success_rate(3, 1) == 0.75
    assert rules.success_rate(0, 0) is None
    assert rules.freshness_seconds(None, NOW) is None
