"""The one schedule validator: every door and the DAG factory get its limits and messages."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from chartsync.core import schedule
from chartsync.core.calendar import Frequency
from chartsync.core.schedule import ScheduleConfig, ScheduleError


@pytest.mark.parametrize("hours", [None, 0, -3, 10_000, 2.5, True])
def test_custom_hours_rejected(hours):
    with pytest.raises(ValueError, match="Interval \\(hours\\)") as raised:
        schedule.check_custom_hours(hours)
    assert raised.value.field == "custom_interval_hours"


def test_custom_hours_accepted():
    assert schedule.check_custom_hours(6) == 6


@pytest.mark.parametrize("value", [0, -1, 1e999, math.nan, math.inf, 24 * 62 + 1, "12", True])
def test_deadline_hours_must_be_a_finite_number_in_range(value):
    with pytest.raises(ScheduleError) as raised:
        schedule.check_deadline_hours(value)
    assert raised.value.field == "deadline_hours"
    assert str(raised.value) == "Deadline (hours): must be a number of hours above 0 and at most 1488"


@pytest.mark.parametrize(("settings", "field", "message"), [
    ({"sync_frequency": "fortnightly"}, "sync_frequency", "Sync frequency: unknown frequency 'fortnightly'"),
    ({"sync_frequency": "custom"}, "custom_interval_hours", "Interval (hours): required for the custom frequency"),
    ({"sync_frequency": "daily", "custom_interval_hours": 5}, "custom_interval_hours",
     "Interval (hours): only goes with the custom frequency"),
    ({"sync_frequency": "cron"}, "cron_expression", "Cron expression: required for the cron frequency"),
    ({"sync_frequency": "cron", "cron_expression": "61 * * * *"}, "cron_expression",
     "Cron expression: '61 * * * *' is not a valid cron expression"),
    ({"sync_frequency": "daily", "deadline_hours": 0}, "deadline_hours", "Deadline (hours): must be"),
])
def test_settings_are_checked_together_naming_the_field_by_its_label(settings, field, message):
    with pytest.raises(ScheduleError) as raised:
        schedule.validate_settings(slug="a-chart", chart_frequency="daily", **settings)
    assert raised.value.field == field
    assert str(raised.value).startswith(message)
    assert raised.value.label == schedule.LABELS[field]


def test_frequency_is_detected_from_the_chart_when_not_given():
    assert schedule.validate_settings(slug="c", chart_frequency="daily", sync_frequency=None) is Frequency.DAILY
    assert schedule.validate_settings(slug="c", chart_frequency=None, sync_frequency=None) is Frequency.WEEKLY


def test_a_slug_that_cannot_name_a_dag_is_refused():
    with pytest.raises(ScheduleError, match="Chart: 'bad slug!' cannot name a DAG"):
        schedule.dag_id_for("bad slug!")
    assert schedule.dag_id_for("ok.slug-1") == "chart_sync__ok.slug-1"
    assert schedule.slug_of("chart_sync__ok.slug-1") == "ok.slug-1"
    assert schedule.slug_of("chart_sync_audience") is None


def test_a_frequency_change_drops_the_settings_the_new_frequency_does_not_use():
    current = dict(schedule.DEFAULTS, sync_frequency="custom", custom_interval_hours=6)
    assert schedule.merged_settings(current, {"sync_frequency": "daily"})["custom_interval_hours"] is None
    kept = schedule.merged_settings(current, {"sync_frequency": "custom", "deadline_hours": 3.0})
    assert kept["custom_interval_hours"] == 6
    with pytest.raises(ScheduleError, match="History start: cannot be changed"):
        schedule.merged_settings(current, {"history_start": "2020-01-01"})


def test_the_factory_validates_a_row_with_the_same_rules():
    row = SimpleNamespace(id=1, chart_id=2, slug="c", name="C", platform="spotify", country_code=None,
                          frequency="daily", sync_frequency="custom", custom_interval_hours=0, cron_expression=None,
                          publication_weekday=None, is_active=True, sync_immediately=True,
                          sync_historical_data=True, fetch_track_metadata=True, history_start=None,
                          deadline_hours=None, created_at=None)
    with pytest.raises(ScheduleError, match="Interval \\(hours\\): must be between 1 and 744"):
        ScheduleConfig.from_row(row)
