"""chartsync.core.quota with plain values: the quota-429 rule, call estimates, the reserve, burn rate."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from chartsync import settings
from chartsync.core import quota
from chartsync.core.quota import QuotaReading

RATE_LIMIT_BODY = {"errors": [{"key": "quota", "code": 429,
                               "message": "Too many requests: maximum request count reached, retry in 1 s"}]}
QUOTA_BODY = {"errors": [{"key": "quota", "code": 429, "message": "Quota exceeded: your API quota is consumed."}]}


@pytest.mark.parametrize(("status", "headers", "body", "exhausted"), [
    (429, {"x-quota-remaining": "0"}, None, True),
    (429, {"X-Quota-Remaining": "0", "Retry-After": "1"}, RATE_LIMIT_BODY, True),  # nothing left wins
    (429, {"x-quota-remaining": "12"}, QUOTA_BODY, True),
    (429, {}, {"errors": [{"key": "quota", "message": "consumed"}]}, True),
    (429, {"x-quota-remaining": "12", "Retry-After": "1"}, RATE_LIMIT_BODY, False),
    (429, {"x-quota-remaining": "12"}, RATE_LIMIT_BODY, False),  # "maximum request count": the rate limit
    (429, {"x-ratelimit-reset": "3"}, QUOTA_BODY, False),
    (429, {}, None, False),
    (429, {}, "not json", False),
    (200, {"x-quota-remaining": "0"}, QUOTA_BODY, False),
])
def test_a_quota_429_is_told_from_a_rate_limit(status, headers, body, exhausted):
    assert quota.is_quota_exhausted(status, headers, body) is exhausted


def test_the_header_is_read_in_any_case_and_garbage_is_unknown():
    assert quota.parse_remaining({"X-QUOTA-REMAINING": " 42 "}) == 42
    assert quota.parse_remaining({"x-quota-remaining": "lots"}) is None
    assert quota.parse_remaining({}) is None


@pytest.mark.parametrize(("size", "pages"), [(200, 2), (100, 1), (101, 2), (50, 1), (None, 2), (0, 2)])
def test_pages_per_period(size, pages):
    assert quota.pages_per_period(size) == pages


def test_estimate_calls_counts_pages_per_period_and_optionally_the_listing():
    assert quota.estimate_calls(365, 200) == 730
    assert quota.estimate_calls(10, None) == 20
    assert quota.estimate_calls(10, 100, available_rankings_calls=4) == 14
    assert quota.estimate_calls(0, 200) == 0


def test_an_estimate_below_the_reserve_warns_in_plain_words():
    low = quota.estimate(730, 1_000, 1_000)
    assert (low.leaves, low.reserve) == (270, 1_000)
    assert low.warning == ("about 730 calls would leave 270 of the quota, below the reserve of 1,000 "
                           f"({settings.QUOTA_RESERVE_ENV})")
    over = quota.estimate(730, 500, 100)
    assert over.leaves == -230 and "more than the 500 left" in over.warning


def test_an_estimate_within_the_quota_or_of_an_unknown_quota_does_not_warn():
    fine = quota.estimate(730, 5_000, 1_000)
    assert fine.leaves == 4_270 and fine.warning is None
    unknown = quota.estimate(730, None, 1_000)
    assert unknown.leaves is None and unknown.warning is None


def test_below_reserve():
    assert quota.below_reserve(999, 1_000) and not quota.below_reserve(1_000, 1_000)
    assert not quota.below_reserve(None, 1_000)


def test_burn_rate_averages_over_the_days_recorded_or_takes_the_last_day():
    assert quota.burn_per_day(100, 3_000, 30) == 100.0
    assert quota.burn_per_day(100, 3_000, 60) == 100.0  # at most the 30-day window
    assert quota.burn_per_day(500, 1_000, 4) == 250.0  # a fresh install: only the days it ran
    assert quota.burn_per_day(80, 80, 1) == 80.0
    assert quota.burn_per_day(0, 0, 0) is None


def test_the_run_out_date():
    today = date(2026, 3, 1)
    assert quota.runs_out_on(1_000, 100.0, today) == date(2026, 3, 11)
    assert quota.runs_out_on(1_050, 100.0, today) == date(2026, 3, 11)
    assert quota.runs_out_on(1_000, 0.0, today) is None
    assert quota.runs_out_on(None, 100.0, today) is None


def test_the_summary_is_json_safe():
    seen = datetime(2026, 3, 1, 6, 30, tzinfo=UTC)
    summary = quota.summarize(QuotaReading(900, seen, {}), 100, 2_000, 20, 1_000, date(2026, 3, 1))
    assert summary.burn_per_day == 100.0 and summary.runs_out_on == date(2026, 3, 10)
    data = json.loads(json.dumps(summary.as_dict()))
    assert data == {"remaining": 900, "seen_at": "2026-03-01T06:30:00+00:00", "spent_24h": 100,
                    "spent_30d": 2_000, "burn_per_day": 100.0, "runs_out_on": "2026-03-10", "reserve": 1_000,
                    "below_reserve": True}
    empty = quota.summarize(None, 0, 0, 0, 1_000, date(2026, 3, 1)).as_dict()
    assert empty["remaining"] is None and empty["runs_out_on"] is None and empty["below_reserve"] is False


def test_the_reserve_and_recheck_knobs(monkeypatch):
    monkeypatch.delenv(settings.QUOTA_RESERVE_ENV, raising=False)
    monkeypatch.delenv(settings.QUOTA_RECHECK_ENV, raising=False)
    assert settings.quota_reserve() == 1_000 and settings.quota_recheck_seconds() == 900.0
    monkeypatch.setenv(settings.QUOTA_RESERVE_ENV, "250")
    monkeypatch.setenv(settings.QUOTA_RECHECK_ENV, "60")
    assert settings.quota_reserve() == 250 and settings.quota_recheck_seconds() == 60.0
    monkeypatch.setenv(settings.QUOTA_RESERVE_ENV, "many")
    assert settings.quota_reserve() == 1_000
