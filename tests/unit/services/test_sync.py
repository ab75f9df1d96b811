"""The sync service against the emulator over real HTTP, into a SQLite chart DB: sync_period (fetch,
then store in one transaction) and sync_run (the decisions of a run, returned as outcomes); the data
quality checks of a synced ranking on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, text, update

from chartsync import settings
from chartsync.core.quality import RankingRejected
from chartsync.soundcharts.models import Ranking
from chartsync.store.tables import (
    chart,
    chart_ranking,
    chart_ranking_entry,
    chart_ranking_quality,
    chart_sync_execution,
    track,
)
from conftest import migrated_chart_engine, migrated_sqlite
from chartsync.core.calendar import Frequency
from chartsync.core.outcomes import Failed, NothingToDo, NotPublishedYet, RunRef, Skipped, Synced
from chartsync.core.schedule import ScheduleConfig
from chartsync.services import sync
from chartsync.soundcharts.client import (
    SoundchartsAuthError,
    SoundchartsClient,
    SoundchartsMalformedResponse,
    SoundchartsNotFound,
)
from chartsync.services.sync import sync_period

SLUG = "apple-music-top-100-us-daily"
PERIOD = date.today() - timedelta(days=5)


@pytest.fixture
def engine(tmp_path):
    engine = migrated_sqlite(tmp_path / 'chart.db')
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=1, slug=SLUG, name="Apple Music US", platform="apple-music",
                                          frequency="daily", created_at=datetime.now(UTC)))
    return engine


@pytest.fixture
def client(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": "soundcharts"}))
    return SoundchartsClient(max_attempts=3)


RUN = RunRef(chart_id=1, dag_id="chart_sync__" + SLUG, run_id="manual__test")


def counts(engine) -> dict:
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                for t in (chart_ranking, chart_ranking_entry, track, chart_sync_execution)}


def test_sync_writes_ranking_entries_tracks_and_execution(engine, client, emulator_admin):
    result = sync_period(engine, client, RUN, SLUG, PERIOD)
    assert (result.rankings_created, result.entries_written, result.api_requests) == (1, 100, 1)
    assert result.tracks_created == 100
    assert counts(engine) == {"chart_ranking": 1, "chart_ranking_entry": 100, "track": 100, "chart_sync_execution": 1}
    with engine.connect() as conn:
        row = conn.execute(select(chart_sync_execution)).one()
    assert (row.status, row.period, row.tracks_created, row.error) == ("success", PERIOD, 100, None)


def test_resync_is_idempotent_and_repairs_changed_rows(engine, client, emulator_admin):
    sync_period(engine, client, RUN, SLUG, PERIOD)
    again = sync_period(engine, client, RUN, SLUG, PERIOD)
    assert (again.rankings_created, again.rankings_updated, again.tracks_created, again.tracks_updated) == (0, 0, 0, 0)
    assert again.entries_written == 0
    with engine.begin() as conn:  # someone damaged a stored entry and a track name
        conn.execute(update(chart_ranking_entry).where(chart_ranking_entry.c.position == 1).values(streams=-1))
        conn.execute(update(track).where(track.c.id == 1).values(name="wrong"))
    repaired = sync_period(engine, client, RUN, SLUG, PERIOD)
    assert (repaired.rankings_updated, repaired.entries_written, repaired.tracks_updated) == (1, 100, 1)
    assert counts(engine)["chart_ranking_entry"] == 100


def test_malformed_payload_fails_with_a_message_and_writes_no_data(engine, client, emulator_admin):
    emulator_admin.fault(kind="malformed", path_contains="/ranking/")
    with pytest.raises(SoundchartsMalformedResponse):
        sync_period(engine, client, RUN, SLUG, PERIOD)
    c = counts(engine)
    assert (c["chart_ranking"], c["chart_ranking_entry"], c["track"]) == (0, 0, 0)
    with engine.connect() as conn:
        row = conn.execute(select(chart_sync_execution)).one()
    assert row.status == "failed" and "Malformed" in row.error


def test_rate_limit_is_waited_out_using_retry_after(engine, client, emulator_admin):
    emulator_admin.fault(kind="429", count=1, retry_after=1)
    result = sync_period(engine, client, RUN, SLUG, PERIOD)
    assert result.rankings_created == 1
    assert result.api_requests == 2  # the refused call and its retry


def test_server_errors_are_retried(engine, client, emulator_admin):
    emulator_admin.fault(kind="500", count=2)
    assert sync_period(engine, client, RUN, SLUG, PERIOD).rankings_created == 1


def test_persistent_server_errors_fail_and_record(engine, client, emulator_admin):
    from chartsync.soundcharts.client import SoundchartsServerError

    emulator_admin.fault(kind="500")
    with pytest.raises(SoundchartsServerError, match="500 after 3 attempts"):
        sync_period(engine, client, RUN, SLUG, PERIOD)
    assert counts(engine)["chart_ranking"] == 0


def test_unpublished_period_raises_not_found_and_writes_nothing(engine, client, emulator_admin):
    with pytest.raises(SoundchartsNotFound):
        sync_period(engine, client, RUN, SLUG, date.today() + timedelta(days=2))
    assert counts(engine) == {"chart_ranking": 0, "chart_ranking_entry": 0, "track": 0, "chart_sync_execution": 0}


def test_wrong_key_is_an_auth_error_that_does_not_leak_the_key(engine, emulator, monkeypatch, caplog):
    secret = "s3cr3t-key-123"
    monkeypatch.setenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": secret}))
    with pytest.raises(SoundchartsAuthError) as err:
        sync_period(engine, SoundchartsClient(), RUN, SLUG, PERIOD)
    assert "403" in str(err.value)
    assert secret not in str(err.value) and secret not in caplog.text
    with engine.connect() as conn:
        assert secret not in (conn.execute(select(chart_sync_execution.c.error)).scalar() or "")


# -- sync_run: the outcomes ---------------------------------------------------------------------------
def config(**overrides) -> ScheduleConfig:
    values = dict(schedule_id=1, chart_id=1, slug=SLUG, chart_name="Apple Music US", platform="apple-music",
                  country_code="US", chart_frequency="daily", frequency=Frequency.DAILY, custom_interval_hours=None,
                  cron_expression=None, weekday=None, is_active=True, sync_immediately=False,
                  sync_historical_data=True, fetch_track_metadata=False, history_start=PERIOD - timedelta(days=30),
                  deadline_hours=None, created_on=date.today())
    return ScheduleConfig(**values | overrides)


def stored(engine) -> list[date]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(chart_ranking.c.period)).scalars())


def test_a_published_period_is_synced(engine, client, emulator_admin):
    outcome = sync.sync_run(engine, client, config(), RUN, PERIOD, run_type="scheduled")
    assert isinstance(outcome, Synced) and outcome.result.period == PERIOD
    assert [r.period for r in outcome.results] == [PERIOD]
    assert stored(engine) == [PERIOD]


def test_an_unpublished_period_waits_until_its_publication_window_ends(engine, client, emulator_admin):
    emulator_admin.fault(kind="unpublished", date=PERIOD.isoformat())
    just_after = datetime.combine(PERIOD + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=1)
    outcome = sync.sync_run(engine, client, config(), RUN, PERIOD, now=just_after)
    assert isinstance(outcome, NotPublishedYet)
    assert outcome.retry_at == just_after + timedelta(minutes=30)  # POKE_INTERVAL
    assert outcome.until == just_after - timedelta(hours=1) + timedelta(hours=36)  # the daily publication wait
    assert stored(engine) == []


def test_a_period_the_api_skipped_is_recorded_as_skipped(engine, client, emulator_admin):
    emulator_admin.fault(kind="unpublished", date=PERIOD.isoformat())
    outcome = sync.sync_run(engine, client, config(), RUN, PERIOD, now=datetime.now(UTC))
    assert isinstance(outcome, Skipped) and "skipped period" in outcome.message
    with engine.connect() as conn:
        assert conn.execute(select(chart_sync_execution.c.status)).scalars().all() == ["skipped"]
    assert stored(engine) == []


def test_a_period_not_complete_yet_is_skipped_with_the_reason_not_synced(engine, client):
    outcome = sync.sync_run(engine, client, config(), RUN, date.today(), run_type="manual")
    assert isinstance(outcome, NothingToDo) and "nothing to sync" in outcome.message
    with engine.connect() as conn:
        rows = conn.execute(select(chart_sync_execution.c.status, chart_sync_execution.c.error)).all()
    assert [r.status for r in rows] == ["skipped"] and rows[0].error == outcome.message
    assert stored(engine) == [] and client.request_count == 0


def test_the_first_run_of_a_schedule_without_history_syncs_the_day_before_its_creation(engine, client):
    fresh = config(sync_historical_data=False, sync_immediately=True, created_on=PERIOD + timedelta(days=1))
    assert fresh.dag_start < PERIOD < gaps_window_first(fresh)  # before its gap window, yet the DAG's own
    assert isinstance(sync.sync_run(engine, client, fresh, RUN, PERIOD, run_type="scheduled"), Synced)


def gaps_window_first(config: ScheduleConfig) -> date:
    from chartsync.core.gaps import history_window

    return history_window(config, date.today())[0]


def test_nothing_published_at_all_is_a_failure_not_worth_a_retry(engine, client, emulator_admin):
    emulator_admin.fault(kind="unpublished", path_contains=SLUG)  # hides the newest ranking
    outcome = sync.sync_run(engine, client, config(), RUN, None)
    assert isinstance(outcome, Failed) and "no published ranking" in outcome.message


def test_the_first_catchup_run_pulls_the_newest_period_forward(engine, client, emulator_admin):
    first = PERIOD - timedelta(days=30)
    immediate = config(sync_immediately=True, history_start=first)
    outcome = sync.sync_run(engine, client, immediate, RUN, first, run_type="scheduled")
    assert isinstance(outcome, Synced) and len(outcome.results) == 2
    assert outcome.results[0].period > PERIOD and outcome.result.period == first
    assert sync.pulls_newest_first(immediate, first, "backfill") is False


def test_period_for_run_is_the_logical_dates_period_for_calendar_schedules():
    logical = datetime(2026, 3, 4, tzinfo=UTC)
    assert sync.period_for_run(config(), logical, logical + timedelta(days=1)) == date(2026, 3, 4)
    weekly = config(frequency=Frequency.WEEKLY, weekday=4)
    assert sync.period_for_run(weekly, logical, logical + timedelta(days=7)) == date(2026, 2, 27)
    assert sync.period_for_run(config(), None, None) is None


# -- data quality: the hard checks refuse a ranking, the soft checks flag it (SQLite and PostgreSQL) --------------
Q_SLUG = "spotify-top-200-gb-daily"  # a stream platform, 200 entries published (maxResultsCount)
Q_RUN = RunRef(chart_id=1, dag_id="chart_sync__" + Q_SLUG, run_id="manual__quality")
BEFORE = PERIOD - timedelta(days=1)


@pytest.fixture(params=["sqlite", "postgres"])
def chart_db(request, tmp_path):
    engine = migrated_chart_engine(request, tmp_path, f"sync_{tmp_path.name[-20:].lower().replace('-', '_')}")
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=1, slug=Q_SLUG, name="Spotify GB", platform="spotify", frequency="daily",
                                          max_results=200, created_at=datetime.now(UTC)))
    yield engine
    engine.dispose()


def quality_rows(engine) -> list:
    """Every quality row, with its row version on PostgreSQL (xmin: any write changes it)."""
    version = text("xmin::text") if engine.dialect.name == "postgresql" else text("NULL")
    with engine.connect() as conn:
        return conn.execute(select(chart_ranking_quality, version).order_by(chart_ranking_quality.c.period)).all()


def everything(engine) -> dict:
    """Every row of the synced tables but the execution log (each sync adds one), row versions included."""
    version = text("xmin::text") if engine.dialect.name == "postgresql" else text("NULL")
    with engine.connect() as conn:
        return {t.name: conn.execute(select(t, version).order_by(*t.primary_key.columns)).all()
                for t in (chart_ranking, chart_ranking_entry, track, chart_ranking_quality)}


def crafted(client, monkeypatch, change) -> None:
    """The client's rankings pass through ``change(entries) -> entries`` (a ranking the emulator has no fault for)."""
    fetch = client.ranking

    def ranking(slug, ranking_date=None):
        fetched = fetch(slug, ranking_date)
        return Ranking(fetched.slug, fetched.ranking_date, change(list(fetched.entries)))

    monkeypatch.setattr(client, "ranking", ranking)


@pytest.mark.parametrize(("variant", "detail"), [
    ("duplicate_positions", r"position 1 appears twice"),
    ("duplicate_songs", r"song [\w-]+ \(positions 1, 200\) appears twice"),
    ("position_out_of_range", r"position 201 outside 1\.\.200"),
])
def test_a_ranking_failing_a_hard_check_is_refused_as_malformed_and_writes_nothing(chart_db, client, emulator_admin,
                                                                                   variant, detail):
    emulator_admin.fault(kind="malformed", variant=variant, path_contains="/ranking/")
    message = rf"{Q_SLUG} {PERIOD}: rejected by check {variant}: {detail}"
    with pytest.raises(SoundchartsMalformedResponse, match=message) as err:
        sync_period(chart_db, client, Q_RUN, Q_SLUG, PERIOD)
    assert isinstance(err.value.__cause__, RankingRejected) and err.value.__cause__.check == variant
    assert all(not rows for rows in everything(chart_db).values())
    with chart_db.connect() as conn:
        row = conn.execute(select(chart_sync_execution)).one()
    assert (row.status, row.period) == ("failed", PERIOD)
    assert re.fullmatch(rf"SoundchartsMalformedResponse: {message}", row.error)


def test_a_hard_check_fails_the_run_as_a_malformed_payload_does(chart_db, client, emulator_admin):
    emulator_admin.fault(kind="malformed", variant="duplicate_songs", path_contains="/ranking/")
    schedule = config(slug=Q_SLUG, chart_name="Spotify GB", platform="spotify", country_code="GB")
    with pytest.raises(SoundchartsMalformedResponse, match="rejected by check duplicate_songs"):
        sync.sync_run(chart_db, client, schedule, Q_RUN, PERIOD, run_type="scheduled")


def test_clean_rankings_are_stored_with_unflagged_quality_rows(chart_db, client, emulator_admin):
    first, second = (sync_period(chart_db, client, Q_RUN, Q_SLUG, day) for day in (BEFORE, PERIOD))
    assert first.quality_flags == second.quality_flags == ()
    earlier, row = quality_rows(chart_db)
    assert (row.period, row.entry_count, row.expected_count, row.missing_positions) == (PERIOD, 200, 200, 0)
    assert row.no_streams_share == 0.0 and row.usual_new_share is None  # too little history to judge churn
    assert (row.previous_checked, row.previous_mismatches, row.flags, row.flagged) == (
        sum(1 for e in client.ranking(Q_SLUG, f"{PERIOD}T00:00:00+00:00").entries if e.previous_position), 0, [],
        False)
    assert earlier.previous_mismatches is None and earlier.previous_checked == 0  # nothing stored before it


@pytest.mark.parametrize(("variant", "flags", "entries"), [
    ("short", ["short"], 143),
    ("gap", ["short", "gaps"], 199),  # the hole at 57 leaves 199 of 200
    ("no_streams", ["missing_streams"], 200),
])
def test_a_ranking_failing_a_soft_check_is_stored_and_flagged(chart_db, client, emulator_admin, caplog, variant, flags,
                                                              entries):
    emulator_admin.fault(kind="malformed", variant=variant, path_contains="/ranking/")
    result = sync_period(chart_db, client, Q_RUN, Q_SLUG, PERIOD)
    assert (result.rankings_created, result.entries_written, list(result.quality_flags)) == (1, entries, flags)
    assert f"quality flags: {', '.join(flags)}" in result.summary() and result.as_dict()["quality_flags"] == flags
    assert f"flagged by the quality checks: {', '.join(flags)}" in caplog.text
    [row] = quality_rows(chart_db)
    assert (row.entry_count, row.flags, row.flagged) == (entries, flags, True)
    assert row.missing_positions == (1 if variant == "gap" else 0)
    assert row.no_streams_share == (1.0 if variant == "no_streams" else 0.0)


def test_churn_flags_a_ranking_with_far_more_new_entries_than_the_charts_usual(chart_db, client, emulator_admin,
                                                                               monkeypatch):
    monkeypatch.setattr(settings, "QUALITY_CHURN_MIN_HISTORY", 1)
    sync_period(chart_db, client, Q_RUN, Q_SLUG, BEFORE)
    crafted(client, monkeypatch, lambda entries: [
        replace(e, previous_position=None, entry_state="NEW") if e.position > 150 else e for e in entries])
    result = sync_period(chart_db, client, Q_RUN, Q_SLUG, PERIOD)
    assert result.quality_flags == ("churn",)
    usual, row = quality_rows(chart_db)
    assert row.new_share >= 0.25 and row.usual_new_share == usual.new_share < 0.05


def test_previous_mismatch_flags_previous_positions_the_stored_period_contradicts(chart_db, client, emulator_admin,
                                                                                  monkeypatch):
    sync_period(chart_db, client, Q_RUN, Q_SLUG, BEFORE)
    moved = []

    def move_the_top_ten(entries):  # each says it was one place lower than it was
        moved[:] = [e.position for e in entries if e.previous_position and e.position <= 10]
        return [replace(e, previous_position=e.previous_position % 200 + 1) if e.position in moved else e
                for e in entries]

    crafted(client, monkeypatch, move_the_top_ten)
    assert sync_period(chart_db, client, Q_RUN, Q_SLUG, PERIOD).quality_flags == ("previous_mismatch",)
    assert quality_rows(chart_db)[-1].previous_mismatches == len(moved) >= 5


def test_thresholds_come_from_settings(chart_db, client, emulator_admin, monkeypatch):
    emulator_admin.fault(kind="malformed", variant="short", path_contains="/ranking/")
    monkeypatch.setattr(settings, "QUALITY_MIN_FILL", 0.7)  # 143 of 200 is enough
    assert sync_period(chart_db, client, Q_RUN, Q_SLUG, PERIOD).quality_flags == ()


def test_a_resync_of_an_unchanged_period_changes_no_row(chart_db, client, emulator_admin):
    for day in (BEFORE, PERIOD):
        sync_period(chart_db, client, Q_RUN, Q_SLUG, day)
    before = everything(chart_db)
    for day in (BEFORE, PERIOD):
        again = sync_period(chart_db, client, Q_RUN, Q_SLUG, day)
        assert (again.rankings_created, again.rankings_updated, again.entries_written) == (0, 0, 0)
    assert everything(chart_db) == before  # checked_at and, on PostgreSQL, every row version included


def test_a_repaired_ranking_is_checked_again(chart_db, client, emulator_admin):
    emulator_admin.fault(kind="malformed", variant="gap", path_contains="/ranking/", count=1)
    assert sync_period(chart_db, client, Q_RUN, Q_SLUG, PERIOD).quality_flags == ("short", "gaps")
    repaired = sync_period(chart_db, client, Q_RUN, Q_SLUG, PERIOD)
    assert (repaired.rankings_updated, repaired.quality_flags) == (1, ())
    [row] = quality_rows(chart_db)
    assert (row.entry_count, row.missing_positions, row.flags) == (200, 0, [])


def test_a_previous_period_stored_later_is_compared_at_the_next_resync(chart_db, client, emulator_admin):
    sync_period(chart_db, client, Q_RUN, Q_SLUG, PERIOD)  # catchup: the run of BEFORE has not stored it yet
    assert quality_rows(chart_db)[0].previous_mismatches is None
    sync_period(chart_db, client, Q_RUN, Q_SLUG, BEFORE)
    sync_period(chart_db, client, Q_RUN, Q_SLUG, PERIOD)
    row = quality_rows(chart_db)[-1]
    assert row.period == PERIOD and row.previous_mismatches == 0 and row.previous_checked > 150
