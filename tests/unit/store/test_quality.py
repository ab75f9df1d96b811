"""The quality row's write side (``store.quality``) on SQLite and PostgreSQL: an upsert that leaves an
unchanged row alone; the row written with its ranking (``store.rankings.store_claimed``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from chartsync.core.quality import RankingQuality
from chartsync.soundcharts.models import Ranking, RankingEntry, atom_for
from chartsync.store import quality
from chartsync.store.rankings import claim_period, store_claimed, store_ranking
from chartsync.store.tables import chart, chart_ranking, chart_ranking_quality
from conftest import migrated_chart_engine

SLUG = "spotify-top-200-gb-daily"
DAY = date(2026, 3, 4)
NOW = datetime(2026, 3, 5, 6, 0, tzinfo=UTC)
CLEAN = RankingQuality(entry_count=3, expected_count=200, missing_positions=0, no_streams_share=0.0, new_share=0.0,
                       usual_new_share=None, previous_checked=0, previous_mismatches=None)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    engine = migrated_chart_engine(request, tmp_path, f"quality_{tmp_path.name[-20:].lower().replace('-', '_')}")
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=1, slug=SLUG, name="Spotify GB", platform="spotify", frequency="daily",
                                          max_results=200, created_at=NOW))
    yield engine
    engine.dispose()


def stored(engine, day: date, songs: list[str]) -> None:
    entries = [RankingEntry(song, f"Song {song}", None, None, position, None, None, 1, "DOC", 10)
               for position, song in enumerate(songs, start=1)]
    with engine.begin() as conn:
        store_ranking(conn, 1, Ranking(SLUG, atom_for(day), entries), NOW)


def save(engine, day: date, measured: RankingQuality, now: datetime = NOW) -> bool:
    with engine.begin() as conn:
        return quality.save_quality(conn, 1, day, measured, now)


def rows(engine) -> list:
    """The quality rows, with their row version on PostgreSQL (xmin: any write changes it)."""
    version = text("xmin::text") if engine.dialect.name == "postgresql" else text("NULL")
    with engine.connect() as conn:
        return conn.execute(select(chart_ranking_quality, version).order_by(chart_ranking_quality.c.period)).all()


def test_the_row_is_written_once_and_left_alone_when_nothing_changed(store):
    stored(store, DAY, ["a", "b", "c"])
    flagged = replace(CLEAN, missing_positions=2, no_streams_share=0.3333, usual_new_share=0.0125,
                      previous_checked=3, previous_mismatches=1, flags=("gaps", "previous_mismatch"))
    assert save(store, DAY, flagged) is True
    before = rows(store)
    assert before[0].flags == ["gaps", "previous_mismatch"] and before[0].flagged is True
    assert save(store, DAY, flagged, now=NOW + timedelta(hours=1)) is False
    assert rows(store) == before  # checked_at and the row version included


def test_a_changed_measure_or_flag_rewrites_the_row(store):
    stored(store, DAY, ["a", "b", "c"])
    save(store, DAY, CLEAN)
    later = NOW + timedelta(hours=1)
    assert save(store, DAY, replace(CLEAN, previous_checked=3, previous_mismatches=0), now=later) is True
    assert save(store, DAY, replace(CLEAN, previous_checked=3, previous_mismatches=0, flags=("churn",)),
                now=later + timedelta(hours=1)) is True
    row = rows(store)[0]
    assert (row.previous_mismatches, row.flags, row.flagged) == (0, ["churn"], True)
    assert row.checked_at.replace(tzinfo=UTC) == later + timedelta(hours=1)


def test_a_row_damaged_since_is_repaired(store):
    stored(store, DAY, ["a", "b", "c"])
    save(store, DAY, CLEAN)
    with store.begin() as conn:
        conn.execute(update(chart_ranking_quality).values(flags=["short"], flagged=True))
    assert save(store, DAY, CLEAN) is True
    assert (rows(store)[0].flags, rows(store)[0].flagged) == ([], False)


# -- the row written with its ranking (store_claimed(..., measured)): with the entries' COPY on PostgreSQL ------
def store_measured(engine, day: date, songs: list[str], measured: RankingQuality, now: datetime = NOW):
    entries = [RankingEntry(song, f"Song {song}", None, None, position, None, None, 1, "DOC", 10)
               for position, song in enumerate(songs, start=1)]
    ranking = Ranking(SLUG, atom_for(day), entries)
    with engine.begin() as conn:
        return store_claimed(conn, claim_period(conn, 1, ranking, now, quality=True), ranking, now, measured)


def test_the_row_is_written_with_a_new_ranking_and_its_flags_returned(store):
    flagged = replace(CLEAN, missing_positions=1, flags=("gaps",))
    result = store_measured(store, DAY, ["a", "b", "c"], flagged)
    assert (result.rankings_created, result.entries_written, result.quality_flags) == (1, 3, ("gaps",))
    [row] = rows(store)
    assert (row.period, row.entry_count, row.missing_positions, row.flags, row.flagged) == (DAY, 3, 1, ["gaps"], True)


def test_a_ranking_without_entries_gets_its_row_on_its_own(store):
    empty = replace(CLEAN, entry_count=0, flags=("short",))
    assert store_measured(store, DAY, [], empty).entries_written == 0
    assert [(row.entry_count, row.flags) for row in rows(store)] == [(0, ["short"])]
    before = rows(store)
    again = store_measured(store, DAY, [], empty, now=NOW + timedelta(hours=1))  # the claim reads no track
    assert (again.rankings_created, again.rankings_updated, again.quality_flags) == (0, 0, ("short",))
    assert rows(store) == before


def test_a_stored_ranking_repaired_or_not_keeps_one_row(store):
    store_measured(store, DAY, ["a", "b", "c"], CLEAN)
    before = rows(store)
    assert store_measured(store, DAY, ["a", "b", "c"], CLEAN, now=NOW + timedelta(hours=1)).entries_written == 0
    assert rows(store) == before  # unchanged: no write, row version included
    repaired = store_measured(store, DAY, ["a", "c"], replace(CLEAN, entry_count=2), now=NOW + timedelta(hours=2))
    assert repaired.rankings_updated == 1
    assert [row.entry_count for row in rows(store)] == [2]


def test_a_row_the_database_refuses_fails_the_store_and_leaves_nothing(store):
    with pytest.raises(IntegrityError):  # on PostgreSQL raised from the statement after the entries' COPY
        store_measured(store, DAY, ["a", "b"], replace(CLEAN, new_share=None))
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(chart_ranking)).scalar() == 0
    assert rows(store) == []

