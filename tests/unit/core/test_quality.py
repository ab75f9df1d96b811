"""The hard and soft checks of a ranking, on plain values."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from chartsync import settings
from chartsync.core import quality
from chartsync.core.quality import QualityContext, RankingRejected, check_ranking, measure, previous_is_adjacent
from chartsync.soundcharts.models import RankingEntry

DAY = date(2026, 3, 4)
LABEL = f"spotify-top-200-global-daily {DAY}"


def entry(position: int, song: str | None = None, previous: int | None = None, state: str | None = None,
          metric: int | None = 1000) -> RankingEntry:
    return RankingEntry(song_uuid=song or f"s{position}", song_name="x", credit_name=None, image_url=None,
                        position=position, previous_position=previous, entry_state=state, time_on_chart=3,
                        time_on_chart_unit="DOC", metric=metric)


def ranking(size: int = 20) -> list[RankingEntry]:
    """A clean ranking: every song was one place lower the day before."""
    return [entry(p, previous=p + 1) for p in range(1, size + 1)]


def previous_day(size: int = 20) -> QualityContext:
    """The context of ``ranking(size)``: the day before is stored and agrees."""
    return QualityContext(platform="spotify", expected_count=size, frequency="daily", previous_period=DAY - timedelta(1),
                          previous_positions={f"s{p}": p + 1 for p in range(1, size + 1)},
                          recent_new_shares=(0.05,) * 10)


# -- hard checks ------------------------------------------------------------------------------------------
def test_a_clean_ranking_passes_the_hard_checks():
    check_ranking(LABEL, ranking(), 20)
    check_ranking(LABEL, ranking(), None)


def test_duplicate_positions_are_rejected_naming_them():
    entries = ranking()
    entries[3], entries[17] = replace(entries[3], position=5), replace(entries[17], position=17)
    with pytest.raises(RankingRejected) as err:
        check_ranking(LABEL, entries, 20)
    assert err.value.check == "duplicate_positions"
    assert str(err.value) == f"{LABEL}: rejected by check duplicate_positions: positions 5, 17 appear twice"


def test_duplicate_songs_are_rejected_naming_the_song_and_its_positions():
    entries = ranking()
    entries[-1] = replace(entries[-1], song_uuid="s1")
    with pytest.raises(RankingRejected, match=r"duplicate_songs: song s1 \(positions 1, 20\) appears twice$") as err:
        check_ranking(LABEL, entries, 20)
    assert err.value.check == "duplicate_songs"


@pytest.mark.parametrize(("size", "position", "message"), [
    (20, 21, "position 21 outside 1..20"),
    (20, 0, "position 0 outside 1..20"),
    (None, 0, "position 0 outside >= 1 (the chart's size is unknown)"),
])
def test_positions_outside_the_charts_size_are_rejected(size, position, message):
    entries = ranking()
    entries[-1] = replace(entries[-1], position=position)
    with pytest.raises(RankingRejected) as err:
        check_ranking(LABEL, entries, size)
    assert err.value.check == "position_out_of_range" and str(err.value).endswith(message)


def test_an_unknown_size_bounds_positions_only_below():
    check_ranking(LABEL, [*ranking(), entry(500)], None)


def test_many_offending_values_are_counted_not_all_listed():
    entries = [entry(p) for p in range(1, 31)] + [entry(p, song=f"again{p}") for p in range(1, 16)]
    with pytest.raises(RankingRejected, match=r"positions 1, 2, .*, 10 and 5 more appear twice$"):
        check_ranking(LABEL, entries, 30)


# -- soft checks -----------------------------------------------------------------------------------------
def test_a_clean_ranking_is_measured_and_not_flagged():
    measured = measure(DAY, ranking(), previous_day())
    assert measured == quality.RankingQuality(
        entry_count=20, expected_count=20, missing_positions=0, no_streams_share=0.0, new_share=0.0,
        usual_new_share=0.05, previous_checked=20, previous_mismatches=0, flags=())
    assert not measured.flagged


def test_short_flags_fewer_entries_than_the_published_size():
    assert measure(DAY, ranking(19), previous_day(20)).flags == ("short",)
    assert "short" not in measure(DAY, ranking(19), replace(previous_day(), expected_count=None)).flags


def test_gaps_counts_the_holes_below_the_highest_position():
    entries = [e for e in ranking() if e.position not in (5, 6)]
    measured = measure(DAY, entries, replace(previous_day(), expected_count=None))
    assert (measured.missing_positions, measured.flags) == (2, ("gaps",))


def test_missing_streams_is_measured_on_stream_platforms_only():
    entries = [replace(e, metric=None) if e.position <= 2 else e for e in ranking()]
    measured = measure(DAY, entries, previous_day())
    assert (measured.no_streams_share, measured.flags) == (0.1, ("missing_streams",))
    other = measure(DAY, entries, replace(previous_day(), platform="apple-music"))
    assert (other.no_streams_share, other.flags) == (None, ())


def test_churn_flags_many_more_new_entries_than_usual():
    entries = [entry(p, state="NEW") if p <= 4 else entry(p, previous=p + 1) for p in range(1, 21)]
    measured = measure(DAY, entries, replace(previous_day(), previous_positions={}))
    assert (measured.new_share, measured.usual_new_share) == (0.2, 0.05)
    assert "churn" in measured.flags
    usual = measure(DAY, entries, replace(previous_day(), recent_new_shares=(0.1,) * 10))
    assert "churn" not in usual.flags  # 0.2 is not above 3 x 0.1


def test_re_entries_are_not_new_and_churn_needs_some_history():
    entries = [entry(p, state="RE_ENTRY") if p <= 4 else entry(p, previous=p + 1) for p in range(1, 21)]
    assert measure(DAY, entries, previous_day()).new_share == 0.0
    young = replace(previous_day(), recent_new_shares=(0.0,) * (settings.QUALITY_CHURN_MIN_HISTORY - 1))
    measured = measure(DAY, [entry(p) for p in range(1, 21)], young)
    assert (measured.new_share, measured.usual_new_share, measured.flags) == (1.0, None, ())


def test_churn_is_the_mean_of_the_last_history_rankings_only(monkeypatch):
    monkeypatch.setattr(settings, "QUALITY_CHURN_HISTORY", 2)
    monkeypatch.setattr(settings, "QUALITY_CHURN_MIN_HISTORY", 2)
    context = replace(previous_day(), recent_new_shares=(0.1, 0.2, 0.9))
    assert measure(DAY, ranking(), context).usual_new_share == 0.15


def test_previous_positions_the_previous_period_contradicts_are_mismatches():
    context = previous_day()
    moved = dict(context.previous_positions, s3=9)
    del moved["s4"]
    measured = measure(DAY, ranking(), replace(context, previous_positions=moved))
    assert (measured.previous_checked, measured.previous_mismatches) == (20, 2)
    assert measured.flags == ("previous_mismatch",)


def test_previous_positions_are_not_judged_without_the_period_just_before():
    for missing in (None, DAY - timedelta(days=2)):
        measured = measure(DAY, ranking(), replace(previous_day(), previous_period=missing, previous_positions={}))
        assert (measured.previous_checked, measured.previous_mismatches, measured.flags) == (0, None, ())


def test_the_period_just_before_follows_the_charts_calendar():
    assert previous_is_adjacent("daily", date(2026, 3, 3), DAY)
    assert previous_is_adjacent("weekly", date(2026, 2, 25), DAY)
    assert not previous_is_adjacent("weekly", date(2026, 2, 18), DAY)
    assert previous_is_adjacent("monthly", date(2026, 2, 1), date(2026, 3, 1))
    assert not previous_is_adjacent("daily", None, DAY)


@pytest.mark.parametrize(("setting", "value", "flag"), [
    ("QUALITY_MIN_FILL", 0.9, "short"),
    ("QUALITY_MAX_NO_STREAMS_SHARE", 0.2, "missing_streams"),
    ("QUALITY_MAX_PREVIOUS_MISMATCH_SHARE", 0.2, "previous_mismatch"),
    ("QUALITY_STREAM_PLATFORMS", ("apple-music",), "missing_streams"),
])
def test_thresholds_come_from_settings(monkeypatch, setting, value, flag):
    entries = [replace(e, metric=None, previous_position=e.position + 2) if e.position <= 3 else e
               for e in ranking(19)]  # one short of 20, 3/19 without streams, 3/19 contradicted
    assert flag in measure(DAY, entries, previous_day()).flags
    monkeypatch.setattr(settings, setting, value)
    assert flag not in measure(DAY, entries, previous_day()).flags


def test_an_empty_ranking_is_short_and_measures_zero():
    measured = measure(DAY, [], previous_day())
    assert (measured.entry_count, measured.missing_positions, measured.new_share) == (0, 0, 0.0)
    assert measured.flags == ("short",)
