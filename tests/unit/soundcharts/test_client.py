"""The Soundcharts client against the emulator: paging, typed results, errors."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from chartsync.soundcharts.client import SoundchartsClient, SoundchartsNotFound, SoundchartsRateLimited
from chartsync.soundcharts.errors import SoundchartsMalformedResponse
from chartsync.soundcharts.models import ranking_entry


@pytest.fixture
def client(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": "soundcharts"}))
    return SoundchartsClient(max_attempts=2)


def test_charts_by_platform_reads_every_page(client):
    charts = client.charts_by_platform("spotify")
    assert len(charts) >= 5
    assert all(c.platform == "spotify" and c.slug for c in charts)
    assert {c.frequency for c in charts} >= {"daily", "weekly"}


def test_ranking_follows_pages_to_the_total(client, emulator_admin):
    day = date.today() - timedelta(days=4)
    ranking = client.ranking("spotify-top-200-global-daily", f"{day.isoformat()}T00:00:00+00:00")
    assert ranking.period == day
    assert [e.position for e in ranking.entries] == list(range(1, 201))
    assert client.request_count == 2


def test_latest_ranking(client):
    ranking = client.ranking("spotify-top-200-global-daily")
    assert date.today() - timedelta(days=3) <= ranking.period < date.today()


def test_available_rankings_skip_the_holiday_week(client):
    dates = client.available_rankings("deezer-top-100-global-weekly-holiday")
    days = [date.fromisoformat(d[:10]) for d in dates]
    assert days == sorted(days, reverse=True)
    assert len({d.weekday() for d in days}) == 1
    gaps = [(a - b).days for a, b in zip(days, days[1:])]
    assert 14 in gaps  # the skipped Christmas week
    assert set(gaps) <= {7, 14}


def test_song_metadata_is_typed(client):
    uuid = client.ranking("spotify-top-200-global-daily").entries[0].song_uuid
    song = client.song(uuid)
    assert song.uuid == uuid and song.name and song.artists and song.isrc


def test_unknown_chart_is_not_found(client):
    with pytest.raises(SoundchartsNotFound):
        client.ranking("no-such-chart")


def test_long_retry_after_is_raised_with_its_delay(client, emulator_admin):
    emulator_admin.fault(kind="429", retry_after=3600)
    with pytest.raises(SoundchartsRateLimited) as err:
        client.charts_by_platform("deezer")
    assert err.value.retry_after == 3600


def test_a_position_below_one_is_parsed_so_the_quality_check_can_name_it():
    item = {"song": {"uuid": "s-1", "name": "Song"}, "position": 0}
    assert ranking_entry(item, "/ranking").position == 0
    with pytest.raises(SoundchartsMalformedResponse, match="empty song"):
        ranking_entry({"song": {"uuid": "", "name": "Song"}, "position": 3}, "/ranking")
