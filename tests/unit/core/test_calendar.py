from datetime import UTC, date, datetime

import pytest

from chartsync.core import calendar as f
from chartsync.core.calendar import Frequency, Period


def test_parse_and_reject_unknown():
    assert Frequency.parse(" Weekly ") is Frequency.WEEKLY
    with pytest.raises(ValueError, match="unknown frequency 'hourly'"):
        Frequency.parse("hourly")


@pytest.mark.parametrize(
    ("api", "dates", "expected"),
    [
        ("daily", None, Frequency.DAILY),
        ("WEEKLY", None, Frequency.WEEKLY),
        ("monthly", None, Frequency.MONTHLY),
        (None, [date(2026, 1, d) for d in (1, 2, 3, 4)], Frequency.DAILY),
        (None, [date(2026, 1, 1), date(2026, 1, 8), date(2026, 1, 15)], Frequency.WEEKLY),
        (None, [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)], Frequency.MONTHLY),
        (None, None, Frequency.WEEKLY),
        ("unheard-of", [], Frequency.WEEKLY),
    ],
)
def test_detect_frequency(api, dates, expected):
    assert f.detect_frequency(api, dates) is expected


def test_weekly_alignment_on_publication_weekday():
    # 2026-11-24 is a Tuesday; a chart published on Fridays (4) -> the Friday before
    assert f.align(Frequency.WEEKLY, date(2026, 11, 24), 4) == date(2026, 11, 20)
    assert f.align(Frequency.WEEKLY, date(2026, 11, 20), 4) == date(2026, 11, 20)
    assert f.period_containing(Frequency.WEEKLY, date(2026, 11, 24), 4) == Period(date(2026, 11, 20), date(2026, 11, 27))


def test_monthly_periods_roll_over_year_end():
    periods = f.periods_between(Frequency.MONTHLY, date(2025, 11, 15), date(2026, 2, 1))
    assert [p.start for p in periods] == [date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1)]
    assert periods[0].end == date(2026, 1, 1)


def test_daily_periods_are_contiguous_and_inclusive():
    periods = f.periods_between(Frequency.DAILY, date(2026, 2, 27), date(2026, 3, 2))
    assert [p.key for p in periods] == ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]
    assert all(a.end == b.start for a, b in zip(periods, periods[1:]))


def test_history_start_is_one_year_back_and_aligned():
    created = date(2026, 11, 24)
    assert f.history_start(Frequency.DAILY, created) == date(2025, 11, 24)
    weekly = f.history_start(Frequency.WEEKLY, created, 3)
    assert weekly.weekday() == 3 and date(2025, 11, 24) <= weekly < date(2025, 12, 1)
    assert f.history_start(Frequency.MONTHLY, created) == date(2025, 12, 1)
    # custom/cron schedules fall back to day alignment
    assert f.history_start(Frequency.CUSTOM, created) == date(2025, 11, 24)


def test_cron_for_each_calendar_frequency():
    assert f.cron_for(Frequency.DAILY) == "0 0 * * *"
    assert f.cron_for(Frequency.WEEKLY, 4) == "0 0 * * FRI"
    assert f.cron_for(Frequency.MONTHLY) == "0 0 1 * *"
    with pytest.raises(ValueError):
        f.cron_for(Frequency.CUSTOM)


def test_latest_complete_period():
    now = datetime(2026, 11, 24, 10, tzinfo=UTC)
    assert f.latest_complete_period(Frequency.DAILY, now).start == date(2026, 11, 23)
    assert f.latest_complete_period(Frequency.WEEKLY, now, 4).start == date(2026, 11, 13)
    assert f.latest_complete_period(Frequency.MONTHLY, now).start == date(2026, 10, 1)
