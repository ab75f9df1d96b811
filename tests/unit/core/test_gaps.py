"""Pure gap rules: what waits for the catchup, and which periods a manual run may sync."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from chartsync.core.calendar import Frequency
from chartsync.core.gaps import GapRange, Window, split_at_front, triggerable_period
from chartsync.core.schedule import ScheduleConfig, ScheduleError

TODAY = date(2026, 11, 24)  # a Tuesday


def config(frequency: Frequency = Frequency.MONTHLY, **over) -> ScheduleConfig:
    values = dict(schedule_id=1, chart_id=1, slug="c", chart_name="C", platform="spotify", country_code=None,
                  chart_frequency=frequency.value, frequency=frequency, custom_interval_hours=None,
                  cron_expression=None, weekday=0 if frequency is Frequency.WEEKLY else None, is_active=True,
                  sync_immediately=False, sync_historical_data=True, fetch_track_metadata=False,
                  history_start=date(2025, 12, 1), deadline_hours=None, created_on=TODAY)
    values.update(over)
    return ScheduleConfig(**values)


def weekly_window() -> Window:
    return Window(1, "w", ("weekly", 0), date(2026, 9, 7), date(2026, 11, 16))


def test_ranges_behind_the_front_are_gaps_and_the_rest_waits_for_the_catchup():
    w = weekly_window()
    mondays = [w.first + timedelta(weeks=i) for i in range(11)]
    ranges = [GapRange(1, "w", mondays[1], mondays[1], 1), GapRange(1, "w", mondays[4], mondays[8], 5),
              GapRange(1, "w", mondays[10], mondays[10], 1)]
    gaps, waiting = split_at_front(w, ranges, mondays[6])
    assert [(g.start, g.end, g.periods) for g in gaps] == [(mondays[1], mondays[1], 1), (mondays[4], mondays[5], 2)]
    assert (waiting.front, waiting.first, waiting.last, waiting.periods) == (mondays[6], mondays[6], mondays[10], 4)


def test_no_front_or_a_front_past_the_window_leaves_every_range_a_gap():
    w = weekly_window()
    ranges = [GapRange(1, "w", w.first, w.last, 11)]
    assert split_at_front(w, ranges, None) == (ranges, None)
    assert split_at_front(w, ranges, w.last + timedelta(days=7)) == (ranges, None)


def test_a_period_start_in_the_window_is_triggerable():
    assert triggerable_period(config(), date(2026, 2, 1), TODAY) == date(2026, 2, 1)


def test_a_day_inside_a_period_names_the_nearest_period_starts_unless_snap_asks_for_it():
    with pytest.raises(ScheduleError) as refused:
        triggerable_period(config(), date(2026, 2, 15), TODAY)
    assert refused.value.field == "period"
    assert "2026-02-01, 2026-03-01" in str(refused.value) and "snap" in str(refused.value)
    assert triggerable_period(config(), date(2026, 2, 15), TODAY, snap=True) == date(2026, 2, 1)


@pytest.mark.parametrize("period, words", [
    (date(1, 1, 1), "before the first period"), (date(2025, 6, 1), "the earliest period is 2025-12-01"),
    (date(2026, 11, 1), "not a complete period yet"), (date(2027, 1, 1), "the latest period is 2026-10-01")])
def test_periods_outside_the_history_window_are_refused_even_with_snap(period, words):
    with pytest.raises(ScheduleError) as refused:
        triggerable_period(config(), period, TODAY, snap=True)
    assert refused.value.field == "period" and words in str(refused.value)


def test_weekly_periods_start_on_the_charts_publication_weekday():
    weekly = config(Frequency.WEEKLY, history_start=date(2025, 11, 24))
    assert triggerable_period(weekly, date(2026, 11, 16), TODAY) == date(2026, 11, 16)
    with pytest.raises(ScheduleError, match="2026-11-09, 2026-11-16"):
        triggerable_period(weekly, date(2026, 11, 12), TODAY)


def test_only_the_periods_the_catchup_is_creating_now_are_next_in_it():
    from chartsync.core.gaps import is_next_in_catchup

    front = date(2026, 3, 1)
    assert not is_next_in_catchup(Frequency.MONTHLY, date(2026, 2, 1), front)  # behind: the catchup passed it
    assert is_next_in_catchup(Frequency.MONTHLY, front, front)
    assert is_next_in_catchup(Frequency.MONTHLY, date(2026, 5, 1), front)
    assert not is_next_in_catchup(Frequency.MONTHLY, date(2026, 6, 1), front)  # far ahead: passed over later


def test_a_schedule_without_history_that_syncs_immediately_may_sync_from_its_dags_start():
    fresh = config(Frequency.DAILY, sync_historical_data=False, sync_immediately=True,
                   history_start=date(2025, 11, 24), created_on=TODAY)
    assert triggerable_period(fresh, date(2026, 11, 23), TODAY) == date(2026, 11, 23)
    later = config(Frequency.DAILY, sync_historical_data=False, history_start=date(2025, 11, 24), created_on=TODAY)
    with pytest.raises(ScheduleError, match="the earliest period is 2026-11-24"):
        triggerable_period(later, date(2026, 11, 23), TODAY)
