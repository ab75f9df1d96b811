"""The ranking page's read side and the coverage strip, on data synced from the emulator; the write side
(``store_ranking``, and the claim's quality context) on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from chartsync import settings
from chartsync.core.quality import QualityContext, RankingQuality
from chartsync.services import coverage
from chartsync.store import ranking_pages, rankings
from chartsync.seam import orchestration
from conftest import migrated_chart_engine, migrated_sqlite
from chartsync.store.tables import chart, chart_expected_period, chart_ranking, chart_ranking_entry, track
from chartsync.core.outcomes import RunRef
from chartsync.store.executions import record_failure
from chartsync.store.quality import save_quality
from chartsync.core.calendar import Frequency
from chartsync.core.schedule import ScheduleConfig
from chartsync.soundcharts.client import SoundchartsClient
from chartsync.soundcharts.models import Ranking, RankingEntry, atom_for
from chartsync.services.sync import sync_period

SLUG = "spotify-top-200-gb-daily"
DAY = date.today() - timedelta(days=6)


@pytest.fixture(scope="module")
def engine(tmp_path_factory, emulator):
    engine = migrated_sqlite(tmp_path_factory.mktemp('rank') / 'chart.db')
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=1, slug=SLUG, name="Spotify GB", platform="spotify", frequency="daily",
                                          created_at=datetime.now(UTC)))
    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": "soundcharts"}))
    client = SoundchartsClient()
    run = RunRef(1, "chart_sync__" + SLUG, "manual__t")
    for day in (DAY - timedelta(days=1), DAY, DAY + timedelta(days=2)):
        sync_period(engine, client, run, SLUG, day)
    mp.undo()
    return engine


def test_page_of_a_period_with_navigation_and_trend_counts(engine):
    page = ranking_pages.ranking_page(engine, 1, DAY)
    assert page.period == DAY and page.entry_count == 200
    assert page.previous_period == DAY - timedelta(days=1)
    assert page.next_period == DAY + timedelta(days=2)  # the next STORED period
    assert sum(page.trend_counts.values()) == 200
    assert page.trend_counts["up"] > 0 and page.trend_counts["down"] > 0
    assert [e.position for e in page.entries] == list(range(1, 101))
    assert page.pages == 2
    second = ranking_pages.ranking_page(engine, 1, DAY, page=2)
    assert [e.position for e in second.entries] == list(range(101, 201))


def test_default_is_the_newest_period(engine):
    assert ranking_pages.ranking_page(engine, 1).period == DAY + timedelta(days=2)


def test_filter_sort_and_search(engine):
    new = ranking_pages.ranking_page(engine, 1, DAY, trend="new")
    assert new.matching == new.trend_counts["new"]
    assert {e.trend for e in new.entries} <= {"new"}
    by_streams = ranking_pages.ranking_page(engine, 1, DAY, sort="streams", descending=True)
    streams = [e.streams for e in by_streams.entries]
    assert streams == sorted(streams, reverse=True)
    target = by_streams.entries[10]
    found = ranking_pages.ranking_page(engine, 1, DAY, search=target.track_name[:12].upper())
    assert target.song_uuid in {e.song_uuid for e in found.entries}
    assert found.matching < 200
    with pytest.raises(ValueError):
        ranking_pages.ranking_page(engine, 1, DAY, sort="nonsense")


def test_unknown_period_is_not_found(engine):
    with pytest.raises(ranking_pages.RankingNotFound):
        ranking_pages.ranking_page(engine, 1, DAY - timedelta(days=100))


def test_coverage_strip_marks_each_period(engine, monkeypatch):
    monkeypatch.setattr(orchestration, "catchup_fronts", lambda dag_ids: {})  # an Airflow without this DAG
    today = date.today()
    config = ScheduleConfig(
        schedule_id=1, chart_id=1, slug=SLUG, chart_name="x", platform="spotify", country_code="GB",
        chart_frequency="daily", frequency=Frequency.DAILY, custom_interval_hours=None, cron_expression=None,
        weekday=None, is_active=True, sync_immediately=True, sync_historical_data=True, fetch_track_metadata=True,
        history_start=DAY - timedelta(days=3), deadline_hours=None, created_on=today)
    failed_day, skipped_day = DAY + timedelta(days=1), DAY - timedelta(days=2)
    record_failure(engine, RunRef(1, "d", "r"), failed_day, datetime.now(UTC), "SoundchartsServerError: 500")
    with engine.begin() as conn:
        conn.execute(insert(chart_expected_period), [
            {"chart_id": 1, "period": d, "in_calendar": True, "in_api": d != skipped_day, "expected": d != skipped_day,
             "refreshed_at": datetime.now(UTC)} for d in (skipped_day, DAY)])
    cells = {c.period: c for c in coverage.coverage_strip(engine, config, today=today)}
    assert len(cells) in (365, 366)
    assert cells[DAY].status == "synced"
    assert cells[failed_day].status == "failed" and "500" in cells[failed_day].detail
    assert cells[skipped_day].status == "skipped"
    assert cells[DAY - timedelta(days=3)].status == "missing"
    assert cells[DAY - timedelta(days=30)].status == "outside-window"
    assert cells[today].status == "not-yet-due"


# -- write side: store_ranking on both dialects ------------------------------------------------------
NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    engine = migrated_chart_engine(request, tmp_path, f"rankings_{tmp_path.name[-20:].lower().replace('-', '_')}")
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=1, slug=SLUG, name="Spotify GB", platform="spotify", frequency="daily",
                                          created_at=NOW))
    yield engine
    engine.dispose()


def fetched(day: date, songs: list[str], **changes) -> Ranking:
    """A ranking of ``songs`` in that order; ``changes`` maps a song to the fields that differ."""
    return Ranking(SLUG, atom_for(day), [
        RankingEntry(**{"song_uuid": uuid, "song_name": f"Song {uuid}", "credit_name": f"Artist {uuid}",
                        "image_url": None, "position": position, "previous_position": position + 1,
                        "entry_state": None, "time_on_chart": 9, "time_on_chart_unit": "DOC",
                        "metric": 1000 - position} | changes.get(uuid, {}))
        for position, uuid in enumerate(songs, start=1)])


def store_one(engine, ranking: Ranking, now: datetime = NOW):
    with engine.begin() as conn:
        return rankings.store_ranking(conn, 1, ranking, now)


def snapshot(engine) -> dict:
    with engine.connect() as conn:
        return {t.name: conn.execute(select(t).order_by(t.c.id)).all()
                for t in (chart_ranking, chart_ranking_entry, track)}


def counts(result) -> tuple:
    return (result.rankings_created, result.rankings_updated, result.entries_written, result.tracks_created,
            result.tracks_updated)


def test_a_new_period_stores_its_ranking_entries_and_tracks(store):
    result = store_one(store, fetched(DAY, ["a", "b", "c"], b={"song_name": "It's a \\tab\t\"song\"\n"}))
    assert counts(result) == (1, 0, 3, 3, 0)
    page = ranking_pages.ranking_page(store, 1, DAY)
    assert [(e.position, e.song_uuid, e.streams) for e in page.entries] == [(1, "a", 999), (2, "b", 998), (3, "c", 997)]
    assert page.entries[1].track_name == "It's a \\tab\t\"song\"\n"  # COPY's escapes on PostgreSQL


def test_the_same_data_again_changes_no_row(store):
    store_one(store, fetched(DAY, ["a", "b", "c"]))
    before = snapshot(store)
    again = store_one(store, fetched(DAY, ["a", "b", "c"]), now=NOW + timedelta(hours=1))
    assert counts(again) == (0, 0, 0, 0, 0) and again.new_track_ids == ()
    assert snapshot(store) == before  # fetched_at and updated_at included


def test_changed_data_replaces_the_entries_and_counts_updates(store):
    store_one(store, fetched(DAY, ["a", "b", "c"]))
    later = NOW + timedelta(hours=1)
    result = store_one(store, fetched(DAY, ["c", "a", "d"], a={"song_name": "Renamed"}), now=later)
    assert counts(result) == (0, 1, 3, 1, 1)
    page = ranking_pages.ranking_page(store, 1, DAY)
    assert [(e.position, e.song_uuid) for e in page.entries] == [(1, "c"), (2, "a"), (3, "d")]
    assert page.entries[1].track_name == "Renamed" and page.entry_count == 3
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(chart_ranking_entry)).scalar() == 3
        assert conn.execute(select(track.c.updated_at).where(track.c.song_uuid == "a")).scalar().replace(
            tzinfo=UTC) == later


def test_a_renamed_track_alone_leaves_the_entries(store):
    store_one(store, fetched(DAY, ["a", "b"]))
    entries = snapshot(store)["chart_ranking_entry"]
    result = store_one(store, fetched(DAY, ["a", "b"], b={"credit_name": "New credit"}))
    assert counts(result) == (0, 0, 0, 0, 1)
    assert snapshot(store)["chart_ranking_entry"] == entries


def test_new_tracks_are_created_once_across_periods(store):
    first = store_one(store, fetched(DAY, ["a", "b", "c"]))
    second = store_one(store, fetched(DAY + timedelta(days=1), ["b", "d", "a", "e"]))
    assert (first.tracks_created, second.tracks_created) == (3, 2)
    with store.connect() as conn:
        ids = dict(conn.execute(select(track.c.song_uuid, track.c.id)).all())
    assert len(ids) == 5 and set(second.new_track_ids) == {ids["d"], ids["e"]}


def test_a_failure_part_way_leaves_nothing(store):
    broken = fetched(DAY, ["a", "b", "c"])
    broken = Ranking(SLUG, broken.ranking_date, [*broken.entries, replace(broken.entries[0], song_uuid="z")])
    with pytest.raises(IntegrityError):  # two entries at position 1: the entries' write fails after the tracks'
        store_one(store, broken)
    assert snapshot(store) == {"chart_ranking": [], "chart_ranking_entry": [], "track": []}


def test_songs_names_and_units_the_sql_has_to_quote_are_stored_as_given(store):
    odd_song = 'a,"b"\\{c} d'  # what a text[] literal or COPY line must escape
    ranking = fetched(DAY, [odd_song, "NULL", "c"], **{
        odd_song: {"song_name": 'Name, "quoted" \\ {braced}', "credit_name": None, "image_url": "NULL"},
        "NULL": {"credit_name": "", "time_on_chart_unit": None},
        "c": {"time_on_chart_unit": "W\tC", "previous_position": None, "metric": None}})
    assert counts(store_one(store, ranking)) == (1, 0, 3, 3, 0)
    with store.connect() as conn:
        tracks = {row.song_uuid: (row.name, row.credit_name, row.image_url) for row in conn.execute(select(track))}
        units = conn.execute(select(chart_ranking_entry.c.time_on_chart_unit, chart_ranking_entry.c.streams)
                             .order_by(chart_ranking_entry.c.position)).all()
    assert tracks[odd_song] == ('Name, "quoted" \\ {braced}', None, "NULL")
    assert tracks["NULL"] == ("Song NULL", "", None)
    assert units == [("DOC", 999), (None, 998), ("W\tC", None)]
    assert counts(store_one(store, ranking)) == (0, 0, 0, 0, 0)


# -- the claim's quality context (claim_period(quality=True)): what the ranking's soft checks compare with ------
def claim(engine, day: date, songs: list[str], quality: bool = True) -> rankings.Claim:
    """Claim ``day`` for ``songs`` and roll it back: a look at what the claim reads."""
    with engine.connect() as conn:
        claimed = rankings.claim_period(conn, 1, fetched(day, songs), NOW, quality=quality)
        conn.rollback()
    return claimed


def checked(engine, day: date, share: float) -> None:
    with engine.begin() as conn:
        save_quality(conn, 1, day, RankingQuality(1, None, 0, None, share, None, 0, None), NOW)


def test_the_claim_reads_the_chart_the_period_before_and_the_recent_churn(store):
    with store.begin() as conn:
        conn.execute(update(chart).values(max_results=200))
    store_one(store, fetched(DAY - timedelta(days=3), ["x", "y"]))
    store_one(store, fetched(DAY - timedelta(days=2), ["b", "a", "c"]))
    store_one(store, fetched(DAY + timedelta(days=1), ["a", "b"]))  # after: not this period's context
    for back, share in ((3, 0.5), (2, 0.25)):
        checked(store, DAY - timedelta(days=back), share)
    context = claim(store, DAY, ["a", "b", "z"]).quality
    assert (context.platform, context.expected_count, context.frequency) == ("spotify", 200, "daily")
    assert context.previous_period == DAY - timedelta(days=2)
    assert dict(context.previous_positions) == {"b": 1, "a": 2}  # this ranking's songs; z was not there
    assert tuple(context.recent_new_shares) == (0.25, 0.5)  # newest first


def test_the_churn_history_is_the_last_quality_churn_history_checked_rankings(store, monkeypatch):
    for back in range(1, 5):
        store_one(store, fetched(DAY - timedelta(days=back), ["a"]))
        checked(store, DAY - timedelta(days=back), back / 10)
    monkeypatch.setattr(settings, "QUALITY_CHURN_HISTORY", 2)
    assert tuple(claim(store, DAY, ["a"]).quality.recent_new_shares) == (0.1, 0.2)


def test_a_first_period_has_no_previous_and_no_history(store):
    context = claim(store, DAY, ["a"]).quality
    assert context == QualityContext("spotify", None, "daily", None, {}, ())
    assert claim(store, DAY, ["a"], quality=False).quality is None


def test_a_stored_period_claimed_again_still_reads_its_context(store):
    store_one(store, fetched(DAY - timedelta(days=1), ["a", "b"]))
    store_one(store, fetched(DAY, ["b", "a"]))
    again = claim(store, DAY, ["b", "a"])
    assert again.ranking_id is None and set(again.stored_tracks) == {"a", "b"}
    assert dict(again.quality.previous_positions) == {"a": 1, "b": 2}
