"""The Soundcharts emulator over real HTTP: auth, paging, calendars, movement, faults, CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from soundcharts_emulator import catalog, rankings
from soundcharts_emulator.__main__ import build_parser
from soundcharts_emulator.faults import HANG_DELAY, KINDS, RANKING_VARIANTS, parse_fault_spec
from soundcharts_emulator.server import EmulatorServer, start_server

TODAY = date(2026, 11, 24)  # a Tuesday
DAILY = "spotify-top-200-global-daily"
WEEKLY = "spotify-top-200-global-weekly"  # Thursdays
MONTHLY = "apple-music-top-200-us-monthly"
HOLIDAY = "deezer-top-100-global-weekly-holiday"  # Mondays
AUTH = {"x-app-id": "soundcharts", "x-api-key": "soundcharts"}


def atom(day: date) -> str:
    return f"{day.isoformat()}T00:00:00+00:00"


def ranking_path(slug: str, when: str) -> str:
    return f"/api/v2.14/chart/song/{slug}/ranking/{when}"


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    srv = start_server(host="127.0.0.1", port=0, today=TODAY)
    yield srv
    srv.shutdown()


@pytest.fixture(scope="module")
def http(server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
        yield client


@pytest.fixture(autouse=True)
def clean_faults(http: httpx.Client) -> Iterator[None]:
    yield
    http.post("/__admin/reset")
    http.post("/__admin/today", json={"today": TODAY.isoformat()})
    http.post("/__admin/seed", json={"seed": 0})


def get_all(http: httpx.Client, path: str) -> tuple[list, int]:
    """Every item of a paged list, following ``page.next``; also the number of requests."""
    items, url, calls = [], path, 0
    while url:
        response = http.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        calls += 1
        url = body["page"]["next"]
    return items, calls


def ranking_by_uuid(http: httpx.Client, slug: str, day: date) -> dict[str, dict]:
    items, _ = get_all(http, ranking_path(slug, atom(day)))
    return {item["song"]["uuid"]: item for item in items}


def add_fault(http: httpx.Client, **rule: object) -> None:
    assert http.post("/__admin/faults", json=rule).status_code == 201


# -- auth and errors --------------------------------------------------------------------


def test_missing_credentials_is_401_and_wrong_ones_403(server: EmulatorServer) -> None:
    path = f"{server.url}/api/v2/chart/song/platforms"
    missing = httpx.get(path, headers={"x-app-id": "soundcharts"})
    wrong = httpx.get(path, headers={**AUTH, "x-api-key": "nope"})
    assert missing.status_code == 401 and wrong.status_code == 403
    assert missing.json()["errors"][0]["key"] == "access" and missing.json()["errors"][0]["code"] == 401
    assert wrong.json()["errors"][0]["code"] == 403
    assert missing.headers["content-type"] == "application/json"


def test_quota_header_decreases(http: httpx.Client) -> None:
    first = int(http.get("/api/v2/chart/song/platforms").headers["x-quota-remaining"])
    second = int(http.get("/api/v2/chart/song/platforms").headers["x-quota-remaining"])
    assert second < first


def test_unknown_things_are_404_with_the_error_shape(http: httpx.Client) -> None:
    for path in ("/api/v2/chart/song/by-platform/napster", "/api/v2/chart/song/nope/available-rankings",
                 ranking_path("nope", "latest"), "/api/v2.25/song/not-a-uuid", "/api/v9/whatever"):
        response = http.get(path)
        assert response.status_code == 404, path
        assert response.json()["errors"][0]["code"] == 404


def test_limit_above_100_is_400(http: httpx.Client) -> None:
    for query in ("limit=101", "limit=0", "offset=-1", "limit=abc"):
        response = http.get(f"{ranking_path(DAILY, 'latest')}?{query}")
        assert response.status_code == 400, query
        assert response.json()["errors"][0]["code"] == 400


# -- charts -----------------------------------------------------------------------------


def test_platforms(http: httpx.Client) -> None:
    items = http.get("/api/v2/chart/song/platforms").json()["items"]
    assert {p["code"] for p in items} == {"spotify", "apple-music", "shazam", "deezer"}


def test_catalog_mixes_platforms_frequencies_and_sizes() -> None:
    assert len(catalog.CHARTS) >= 20
    assert {c.frequency for c in catalog.CHARTS} == {"daily", "weekly", "monthly"}
    assert {c.size for c in catalog.CHARTS} == {100, 200}
    assert [c.slug for c in catalog.CHARTS if c.skips_christmas_week] == [HOLIDAY]
    assert all(c.weekday is not None for c in catalog.CHARTS if c.frequency == "weekly")


def test_by_platform_lists_charts_across_pages(http: httpx.Client) -> None:
    items, calls = get_all(http, "/api/v2/chart/song/by-platform/spotify?limit=3")
    expected = catalog.charts_for_platform("spotify")
    assert calls == 3 and len(items) == len(expected) == 8
    assert [c["slug"] for c in items] == [c.slug for c in expected]
    first = items[0]
    assert first["type"] == "song" and first["platform"] == "spotify" and first["cityName"] is None
    assert {"slug", "name", "frequency", "countryCode", "countryName", "maxResultsCount", "webUrl",
            "metric"} <= set(first)
    page = http.get("/api/v2/chart/song/by-platform/spotify?limit=3&offset=3").json()["page"]
    assert page == {"offset": 3, "limit": 3, "total": 8,
                    "next": "/api/v2/chart/song/by-platform/spotify?offset=6&limit=3",
                    "previous": "/api/v2/chart/song/by-platform/spotify?offset=0&limit=3"}


def test_by_platform_filters_by_country(http: httpx.Client) -> None:
    items = http.get("/api/v2/chart/song/by-platform/spotify?countryCode=US").json()["items"]
    assert {c["countryCode"] for c in items} == {"US"} and len(items) == 2


# -- calendars --------------------------------------------------------------------------


def test_daily_rankings_are_published_the_next_day(http: httpx.Client) -> None:
    items, _ = get_all(http, f"/api/v2/chart/song/{DAILY}/available-rankings")
    days = [date.fromisoformat(item[:10]) for item in items]
    assert items[0] == atom(TODAY - timedelta(days=1))
    assert all((a - b).days == 1 for a, b in zip(days, days[1:], strict=False))
    assert days[-1] == date(2024, 11, 24) and len(days) == 730


def test_weekly_rankings_fall_on_the_chart_weekday(http: httpx.Client) -> None:
    items, _ = get_all(http, f"/api/v2/chart/song/{WEEKLY}/available-rankings")
    days = [date.fromisoformat(item[:10]) for item in items]
    assert days[0] == date(2026, 11, 19)
    assert {d.weekday() for d in days} == {3}
    assert all((a - b).days == 7 for a, b in zip(days, days[1:], strict=False))


def test_monthly_rankings_are_dated_on_the_first(http: httpx.Client) -> None:
    items, _ = get_all(http, f"/api/v2/chart/song/{MONTHLY}/available-rankings")
    days = [date.fromisoformat(item[:10]) for item in items]
    assert days[0] == date(2026, 11, 1) and days[-1] == date(2024, 12, 1)
    assert {d.day for d in days} == {1} and len(days) == 24


def test_holiday_chart_skips_the_christmas_week(http: httpx.Client) -> None:
    items, _ = get_all(http, f"/api/v2/chart/song/{HOLIDAY}/available-rankings")
    days = [date.fromisoformat(item[:10]) for item in items]
    assert {d.weekday() for d in days} == {0}
    for skipped in (date(2024, 12, 23), date(2025, 12, 22)):
        assert skipped not in days
        assert skipped - timedelta(days=7) in days and skipped + timedelta(days=7) in days
        response = http.get(ranking_path(HOLIDAY, atom(skipped)))
        assert response.status_code == 404
    # the week after the gap moves against the week before it
    before = ranking_by_uuid(http, HOLIDAY, date(2025, 12, 15))
    after = ranking_by_uuid(http, HOLIDAY, date(2025, 12, 29))
    assert len(after) == 100
    for uuid, item in after.items():
        assert item["oldPosition"] == (before[uuid]["position"] if uuid in before else None)


def test_unpublished_and_unknown_dates_are_404(http: httpx.Client) -> None:
    cases = [
        (DAILY, TODAY), (DAILY, TODAY + timedelta(days=3)),  # not yet published
        (WEEKLY, date(2026, 11, 26)), (MONTHLY, date(2026, 12, 1)),  # future periods
        (WEEKLY, date(2026, 11, 18)),  # not the chart's weekday
        (DAILY, date(2024, 11, 23)),  # before the two-year history
    ]
    for slug, day in cases:
        response = http.get(ranking_path(slug, atom(day)))
        assert response.status_code == 404, (slug, day)
        assert response.json()["errors"][0]["message"] == "No ranking found for this date"


def test_moving_the_clock_publishes_the_next_period(http: httpx.Client) -> None:
    assert http.get(ranking_path(DAILY, atom(TODAY))).status_code == 404
    assert http.post("/__admin/today", json={"today": "2026-11-25"}).json()["today"] == "2026-11-25"
    assert http.get(ranking_path(DAILY, atom(TODAY))).status_code == 200
    assert http.get(ranking_path(DAILY, "latest")).json()["related"]["date"] == atom(TODAY)


# -- rankings ---------------------------------------------------------------------------


def test_ranking_pages_follow_next_to_200_entries(http: httpx.Client) -> None:
    day = TODAY - timedelta(days=1)
    items, calls = get_all(http, ranking_path(DAILY, atom(day)))
    assert calls == 2
    assert [item["position"] for item in items] == list(range(1, 201))
    assert len({item["song"]["uuid"] for item in items}) == 200
    metrics = [item["metric"] for item in items]
    assert all(a > b > 0 for a, b in zip(metrics, metrics[1:], strict=False))
    assert {item["rankDate"] for item in items} == {atom(day)}
    assert {item["timeOnChartUnit"] for item in items} == {"DOC"}
    first = http.get(ranking_path(DAILY, atom(day))).json()
    assert first["related"]["chart"]["slug"] == DAILY and first["related"]["date"] == atom(day)
    assert first["page"]["total"] == 200 and first["errors"] == []
    assert set(first["items"][0]["song"]) == {"uuid", "name", "creditName", "imageUrl"}


def test_latest_is_the_newest_published_period(http: httpx.Client) -> None:
    body = http.get(ranking_path(WEEKLY, "latest")).json()
    assert body["related"]["date"] == atom(date(2026, 11, 19))
    assert body["page"]["next"] == ranking_path(WEEKLY, "latest") + "?offset=100&limit=100"


def test_ranking_date_may_be_encoded_several_ways(http: httpx.Client) -> None:
    day = date(2026, 11, 20)
    expected = http.get(ranking_path(DAILY, atom(day)) + "?limit=5").json()["items"]
    for when in ("2026-11-20T00:00:00%2B00:00", "2026-11-20T00:00:00%2000:00", "2026-11-20"):
        assert http.get(ranking_path(DAILY, when) + "?limit=5").json()["items"] == expected, when
    assert http.get(ranking_path(DAILY, "yesterday")).status_code == 400


@pytest.mark.parametrize("slug", [DAILY, WEEKLY, "shazam-top-200-fr-weekly", MONTHLY])
def test_old_position_is_the_position_in_the_previous_period(http: httpx.Client, slug: str) -> None:
    dates = http.get(f"/api/v2/chart/song/{slug}/available-rankings?limit=2").json()["items"]
    newer, older = (date.fromisoformat(d[:10]) for d in dates[:2])
    current, previous = ranking_by_uuid(http, slug, newer), ranking_by_uuid(http, slug, older)
    for uuid, item in current.items():
        old = previous.get(uuid)
        assert item["oldPosition"] == (old["position"] if old else None)
        if old:
            assert item["positionEvolution"] == old["position"] - item["position"]
            assert item["timeOnChart"] == old["timeOnChart"] + 1
            assert item["entryDate"] == old["entryDate"]
            move = item["positionEvolution"]
            assert item["entryState"] == ("UP" if move > 0 else "DOWN" if move < 0 else "SAME")
        else:
            assert item["positionEvolution"] == 0 and item["entryState"] in ("NEW", "RE_ENTRY")
            assert (item["entryState"] == "NEW") == (item["timeOnChart"] == 1)


def test_charts_move_like_charts() -> None:
    chart = catalog.get_chart(DAILY)
    periods = catalog.published_periods(chart, TODAY)[:30]
    states = [e.state for k in periods for e in rankings.ranking_entries(DAILY, k)]
    assert {"NEW", "RE_ENTRY", "UP", "DOWN", "SAME"} <= set(states)
    new_per_day = states.count("NEW") / len(periods)
    assert 0.5 < new_per_day < 20
    moves = [abs(e.old_position - e.position) for k in periods for e in rankings.ranking_entries(DAILY, k)
             if e.old_position]
    assert sorted(moves)[len(moves) // 2] <= 10  # most songs move a little


def test_same_songs_appear_on_several_charts(http: httpx.Client) -> None:
    day = TODAY - timedelta(days=1)
    spotify = set(ranking_by_uuid(http, DAILY, day))
    shazam_us = set(ranking_by_uuid(http, "shazam-top-200-us-daily", day))
    assert spotify & shazam_us


def test_data_is_deterministic(server: EmulatorServer) -> None:
    paths = [ranking_path(DAILY, atom(date(2025, 6, 1))) + "?offset=100", ranking_path(HOLIDAY, "latest"),
             f"/api/v2/chart/song/{WEEKLY}/available-rankings"]
    with start_server(port=0, today=TODAY) as other:
        for path in paths:
            assert httpx.get(server.url + path, headers=AUTH).content == \
                httpx.get(other.url + path, headers=AUTH).content, path


def test_warm_ranking_pages_are_fast(http: httpx.Client) -> None:
    path = ranking_path("spotify-top-200-us-daily", "latest")
    started = time.perf_counter()
    http.get(path)
    assert time.perf_counter() - started < 4  # cold: computes the lookback for timeOnChart
    started = time.perf_counter()
    for _ in range(10):
        assert http.get(path + "?offset=100").status_code == 200
    assert (time.perf_counter() - started) / 10 < 0.05


# -- songs ------------------------------------------------------------------------------


def test_song_metadata(http: httpx.Client) -> None:
    item = http.get(ranking_path(DAILY, "latest") + "?limit=1").json()["items"][0]
    uuid = item["song"]["uuid"]
    body = http.get(f"/api/v2.25/song/{uuid}").json()
    song = body["object"]
    assert body["type"] == "song" and song["uuid"] == uuid and song["name"] == item["song"]["name"]
    assert song["creditName"] == item["song"]["creditName"]
    assert 1 <= len(song["artists"]) <= 3 and {"uuid", "slug", "name"} <= set(song["artists"][0])
    assert len(song["isrc"]["value"]) == 12 and song["isrc"]["countryCode"] == song["isrc"]["value"][:2]
    assert song["releaseDate"].endswith("T00:00:00+00:00") and song["duration"] > 0
    assert isinstance(song["explicit"], bool) and song["genres"][0]["root"] and song["labels"][0]["name"]
    assert song["languageCode"]
    unknown = uuid[:-1] + ("0" if uuid[-1] != "0" else "1")
    assert http.get(f"/api/v2.25/song/{unknown}").status_code == 404


def test_song_audience(http: httpx.Client) -> None:
    uuid = http.get(ranking_path(DAILY, "latest") + "?limit=1").json()["items"][0]["song"]["uuid"]
    body = http.get(f"/api/v2/song/{uuid}/audience/spotify").json()
    assert body["related"]["song"]["uuid"] == uuid and body["related"]["platform"] == "spotify"
    items = body["items"]
    assert 0 < len(items) <= 90 and items[-1]["date"] == atom(TODAY - timedelta(days=1))
    values = [item["plots"][0]["value"] for item in items]
    assert values == sorted(values) and {item["plots"][0]["identifier"] for item in items} == {"spotify"}
    ranged = http.get(f"/api/v2/song/{uuid}/audience/youtube?startDate=2026-11-20&endDate=2026-11-22").json()
    assert [i["date"][:10] for i in ranged["items"]] == ["2026-11-20", "2026-11-21", "2026-11-22"]
    too_long = http.get(f"/api/v2/song/{uuid}/audience/spotify?startDate=2026-01-01&endDate=2026-06-01")
    assert too_long.status_code == 400
    assert http.get(f"/api/v2/song/{uuid}/audience/napster").status_code == 404


# -- faults -----------------------------------------------------------------------------


def test_429_has_retry_after_and_disarms_after_count(http: httpx.Client) -> None:
    add_fault(http, kind="429", count=2, retry_after=1)
    limited = [http.get("/api/v2/chart/song/platforms") for _ in range(2)]
    assert [r.status_code for r in limited] == [429, 429]
    assert limited[0].headers["retry-after"] == "1" and limited[0].headers["x-ratelimit-reset"] == "1"
    assert limited[0].json()["errors"][0]["code"] == 429
    assert http.get("/api/v2/chart/song/platforms").status_code == 200
    (rule,) = http.get("/__admin/faults").json()["faults"]
    assert rule["fired"] == 2 and rule["armed"] is False


def test_500_only_hits_matching_paths(http: httpx.Client) -> None:
    add_fault(http, kind="500", path_contains="/available-rankings")
    assert http.get(f"/api/v2/chart/song/{DAILY}/available-rankings").status_code == 500
    assert http.get("/api/v2/chart/song/platforms").status_code == 200
    assert http.delete("/__admin/faults").status_code == 200
    assert http.get(f"/api/v2/chart/song/{DAILY}/available-rankings").status_code == 200


def test_slow_delays_then_answers(http: httpx.Client) -> None:
    add_fault(http, kind="slow", delay=0.3, count=1)
    started = time.perf_counter()
    assert http.get("/api/v2/chart/song/platforms").status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_malformed_bodies(http: httpx.Client) -> None:
    add_fault(http, kind="malformed", count=1)
    broken = http.get("/api/v2/chart/song/platforms")
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.content)
    add_fault(http, kind="malformed", variant="missing_items", count=1)
    body = http.get("/api/v2/chart/song/platforms").json()
    assert "items" not in body and "page" in body


def get_ranking(http: httpx.Client, path: str) -> tuple[list[dict], dict]:
    """Every item of a ranking paged as the chart-sync client pages it (the first page, then explicit
    offsets up to ``page.total``); also the first page's body."""
    first = http.get(path, params={"limit": 100}).json()
    items = list(first["items"])
    while len(items) < first["page"]["total"]:
        body = http.get(path, params={"offset": len(items), "limit": 100}).json()
        assert body["items"], body
        items.extend(body["items"])
    return items, first


def _duplicate_positions(items: list[dict]) -> None:
    positions = [item["position"] for item in items]
    assert len(items) == 200 and positions[:3] == [1, 1, 3] and positions[3:] == list(range(4, 201))


def _duplicate_songs(items: list[dict]) -> None:
    assert [item["position"] for item in items] == list(range(1, 201))
    assert items[-1]["song"] == items[0]["song"]  # on the second page, the first page's song
    assert len({item["song"]["uuid"] for item in items}) == 199


def _position_out_of_range(items: list[dict]) -> None:
    assert [item["position"] for item in items] == [*range(1, 200), 201]


def _short(items: list[dict]) -> None:
    assert [item["position"] for item in items] == list(range(1, 144))


def _gap(items: list[dict]) -> None:
    assert [item["position"] for item in items] == [*range(1, 57), *range(58, 201)]


def _no_streams(items: list[dict]) -> None:
    assert len(items) == 200 and {item["metric"] for item in items} == {None}


RANKING_VARIANT_CHECKS = {
    "duplicate_positions": _duplicate_positions, "duplicate_songs": _duplicate_songs,
    "position_out_of_range": _position_out_of_range, "short": _short, "gap": _gap, "no_streams": _no_streams,
}


def test_every_ranking_variant_has_a_check() -> None:
    assert set(RANKING_VARIANT_CHECKS) == set(RANKING_VARIANTS)


@pytest.mark.parametrize("variant", list(RANKING_VARIANT_CHECKS))
def test_ranking_variants_corrupt_every_page_of_one_fetch_as_valid_json(http: httpx.Client, variant: str) -> None:
    path = ranking_path(DAILY, atom(TODAY - timedelta(days=1)))
    clean, _ = get_ranking(http, path)
    add_fault(http, kind="malformed", variant=variant, path_contains="/ranking/", count=1)
    items, first = get_ranking(http, path)
    RANKING_VARIANT_CHECKS[variant](items)
    assert first["page"]["total"] == len(items) and first["related"]["chart"]["maxResultsCount"] == 200
    assert {item["rankDate"] for item in items} == {clean[0]["rankDate"]}
    # count=1 counted the ranking, not its two pages: the next fetch is clean again
    assert get_ranking(http, path)[0] == clean
    assert http.get("/__admin/requests").json()["faults_injected"]["malformed"] == 1
    assert http.get("/__admin/faults").json()["faults"][0]["fired"] == 1


def test_ranking_variants_follow_the_first_page_with_a_rate(http: httpx.Client) -> None:
    """A rate decides per fetch, at its first page: the second page always agrees with the first."""
    path = ranking_path(DAILY, atom(TODAY - timedelta(days=2)))
    add_fault(http, kind="malformed", variant="short", rate=0.5)
    totals = []
    for _ in range(12):
        items, first = get_ranking(http, path)
        assert [item["position"] for item in items] == list(range(1, len(items) + 1))
        totals.append(len(items))
    assert set(totals) == {143, 200}  # 12 draws at 0.5: both, but for a 1 in 2,048 chance
    assert http.get("/__admin/requests").json()["faults_injected"]["malformed"] == totals.count(143)


def test_ranking_variants_leave_other_answers_and_body_variants_other_rules(http: httpx.Client) -> None:
    add_fault(http, kind="malformed", variant="duplicate_songs")  # every path: only rankings are hit
    assert http.get("/api/v2/chart/song/platforms").json()["items"]
    assert http.get("/__admin/requests").json()["faults_injected"]["malformed"] == 0
    add_fault(http, kind="malformed", variant="truncated", count=1, path_contains="/ranking/")
    broken = http.get(ranking_path(WEEKLY, "latest"))  # the body variant breaks the answer first
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.content)


def test_ranking_variant_rules_parse_from_the_command_line_and_bad_ones_are_refused(http: httpx.Client) -> None:
    rule = parse_fault_spec("malformed:variant=duplicate_positions,path_contains=/ranking/")
    assert (rule.kind, rule.variant, rule.path_contains, rule.count) == \
        ("malformed", "duplicate_positions", "/ranking/", None)
    args = build_parser().parse_args(["--fault", "malformed:variant=gap,count=2"])
    assert [(r.variant, r.count) for r in args.fault] == [("gap", 2)]
    response = http.post("/__admin/faults", json={"kind": "malformed", "variant": "duplicate"})
    assert response.status_code == 400 and "duplicate_positions" in response.json()["errors"][0]["message"]


def test_corrupted_keeps_other_charts_sizes_in_range() -> None:
    chart = catalog.get_chart("deezer-top-100-fr-daily")
    entries = rankings.ranking_entries(chart.slug, catalog.newest_period(chart, TODAY))
    assert len(rankings.corrupted(chart, entries, "short")) == 71
    assert rankings.corrupted(chart, entries, "position_out_of_range")[-1].position == 101
    assert rankings.ranking_entries(chart.slug, catalog.newest_period(chart, TODAY)) == entries  # cache intact


def test_unpublished_date_is_hidden_and_404(http: httpx.Client) -> None:
    day = date(2026, 11, 20)
    add_fault(http, kind="unpublished", date=day.isoformat(), path_contains=DAILY)
    dates, _ = get_all(http, f"/api/v2/chart/song/{DAILY}/available-rankings")
    assert atom(day) not in dates and atom(day - timedelta(days=1)) in dates
    response = http.get(ranking_path(DAILY, atom(day)))
    assert response.status_code == 404
    assert response.json()["errors"][0]["message"] == "No ranking found for this date"
    assert http.get(ranking_path("spotify-top-200-us-daily", atom(day))).status_code == 200


def test_unpublished_without_date_withholds_the_latest(http: httpx.Client) -> None:
    add_fault(http, kind="unpublished", path_contains=WEEKLY)
    assert http.get(ranking_path(WEEKLY, "latest")).status_code == 404
    dates = http.get(f"/api/v2/chart/song/{WEEKLY}/available-rankings?limit=1").json()["items"]
    assert dates == [atom(date(2026, 11, 12))]
    assert http.get(ranking_path(WEEKLY, atom(date(2026, 11, 19)))).status_code == 404


def test_bad_fault_rules_are_rejected(http: httpx.Client) -> None:
    assert http.post("/__admin/faults", json={"kind": "teapot"}).status_code == 400
    with pytest.raises(ValueError, match="unknown fault field"):
        parse_fault_spec("429:colour=red")
    rule = parse_fault_spec("429:count=2,retry_after=5,path_contains=/ranking/")
    assert (rule.kind, rule.count, rule.retry_after, rule.path_contains) == ("429", 2, 5, "/ranking/")


def test_request_counters(http: httpx.Client) -> None:
    http.post("/__admin/reset")
    http.get("/api/v2/chart/song/platforms")
    http.get("/api/v2/chart/song/platforms?limit=2")
    http.get(f"/api/v2/chart/song/{DAILY}/available-rankings")
    counts = http.get("/__admin/requests").json()
    assert counts == {"total": 3, "by_path": {"/api/v2/chart/song/platforms": 2,
                                              f"/api/v2/chart/song/{DAILY}/available-rankings": 1},
                      "faults_injected": dict.fromkeys(KINDS, 0)}


def test_faults_injected_are_counted_by_kind(http: httpx.Client) -> None:
    add_fault(http, kind="429", count=2)
    add_fault(http, kind="500", count=1)
    add_fault(http, kind="malformed", count=1)
    add_fault(http, kind="unpublished", path_contains=WEEKLY)
    statuses = [http.get("/api/v2/chart/song/platforms").status_code for _ in range(5)]
    assert statuses == [429, 429, 500, 200, 200]  # the first 200 was the malformed one
    assert http.get(ranking_path(WEEKLY, "latest")).status_code == 404
    injected = http.get("/__admin/requests").json()["faults_injected"]
    assert injected == {**dict.fromkeys(KINDS, 0), "429": 2, "500": 1, "malformed": 1, "unpublished": 1}
    assert sum(rule["fired"] for rule in http.get("/__admin/faults").json()["faults"]) == 5
    http.delete("/__admin/faults")  # clearing the rules keeps the counts, a reset clears them
    assert http.get("/__admin/requests").json()["faults_injected"]["429"] == 2
    http.post("/__admin/reset")
    assert http.get("/__admin/requests").json()["faults_injected"] == dict.fromkeys(KINDS, 0)


# -- probabilistic faults ---------------------------------------------------------------


def hit_numbers(http: httpx.Client, seed: int, requests: int = 1000, **rule: object) -> list[int]:
    """Reset, seed, arm ``rule`` (429 or 500) and send ``requests`` requests; the numbers of those it hit."""
    http.post("/__admin/reset")
    assert http.post("/__admin/seed", json={"seed": seed}).json() == {"seed": seed}
    add_fault(http, **rule)
    return [n for n in range(requests) if http.get("/api/v2/chart/song/platforms").status_code != 200]


def test_rate_hits_a_seeded_share_of_requests(http: httpx.Client) -> None:
    first = hit_numbers(http, 2026, kind="429", rate=0.3)
    assert 240 <= len(first) <= 360  # 1,000 draws at 0.3: mean 300, sd 14.5
    injected = http.get("/__admin/requests").json()["faults_injected"]
    assert injected == {**dict.fromkeys(KINDS, 0), "429": len(first)}
    (rule,) = http.get("/__admin/faults").json()["faults"]
    assert (rule["rate"], rule["fired"], rule["armed"]) == (0.3, len(first), True)
    again = hit_numbers(http, 2026, kind="429", rate=0.3)
    assert again == first  # the same seed hits exactly the same requests
    other = hit_numbers(http, 2027, kind="429", rate=0.3)
    assert other != first and 240 <= len(other) <= 360
    assert len(set(other) & set(first)) < len(first) * 0.5  # about 0.3 of them, by chance


def test_rate_with_count_stops_after_count_hits(http: httpx.Client) -> None:
    unlimited = hit_numbers(http, 5, requests=100, kind="500", rate=0.2)
    capped = hit_numbers(http, 5, requests=100, kind="500", rate=0.2, count=4)
    assert len(unlimited) > 4 and capped == unlimited[:4]
    (rule,) = http.get("/__admin/faults").json()["faults"]
    assert (rule["fired"], rule["armed"]) == (4, False)
    assert http.get("/__admin/requests").json()["faults_injected"]["500"] == 4


def test_rate_decisions_follow_each_request_not_the_interleaving() -> None:
    """Two emulators with one seed hit the same requests, whatever order concurrent clients send them in."""
    paths = ["/api/v2/chart/song/platforms", f"/api/v2/chart/song/{DAILY}/available-rankings?limit=1",
             f"/api/v2/chart/song/{WEEKLY}/available-rankings?limit=1"]
    orders = [[path for _ in range(60) for path in paths], [path for path in paths for _ in range(60)]]
    outcomes = []
    for order in orders:
        with start_server(port=0, today=TODAY, seed=99, faults=["500:rate=0.25"]) as srv, \
                httpx.Client(base_url=srv.url, headers=AUTH, timeout=10) as client:
            statuses = {path: [] for path in paths}
            for path in order:
                statuses[path].append(client.get(path).status_code)
            outcomes.append(statuses)
    assert outcomes[0] == outcomes[1]
    assert all(500 in codes and 200 in codes for codes in outcomes[0].values())


@pytest.mark.parametrize("rate", [0, -0.1, 1.5, "abc", "", "nan", "inf", True])
def test_bad_rates_are_refused_by_the_admin_api(http: httpx.Client, rate: object) -> None:
    response = http.post("/__admin/faults", json={"kind": "429", "rate": rate})
    assert response.status_code == 400
    assert "fault rate must be a number with 0 < rate <= 1" in response.json()["errors"][0]["message"]
    assert http.get("/__admin/faults").json()["faults"] == []


@pytest.mark.parametrize("spec", ["429:rate=0", "500:rate=-1", "slow:rate=1.01", "hang:rate=often",
                                  "malformed:rate=", "429:rate=nan"])
def test_bad_rates_are_refused_on_the_command_line(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--fault", spec])
    assert exited.value.code == 2
    assert "fault rate must be a number with 0 < rate <= 1" in capsys.readouterr().err


def test_rate_rules_parse_and_unpublished_takes_none(http: httpx.Client) -> None:
    args = build_parser().parse_args(["--seed", "7", "--fault", "429:rate=0.1,count=3,path_contains=/ranking/",
                                      "--fault", "500:rate=1"])
    assert args.seed == 7
    assert [(r.kind, r.rate, r.count, r.path_contains) for r in args.fault] == \
        [("429", 0.1, 3, "/ranking/"), ("500", 1.0, None, None)]
    with pytest.raises(ValueError, match="does not apply to unpublished"):
        parse_fault_spec("unpublished:rate=0.5")
    assert http.post("/__admin/faults", json={"kind": "unpublished", "rate": 0.5}).status_code == 400
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--seed", "x"])
    assert exited.value.code == 2


def test_seed_admin_route(http: httpx.Client) -> None:
    assert http.get("/__admin/seed").json() == {"seed": 0}
    assert http.post("/__admin/seed", json={"seed": 42}).json() == {"seed": 42}
    http.post("/__admin/reset")  # a reset keeps the seed
    assert http.get("/__admin/seed").json() == {"seed": 42}
    for body in ({"seed": "abc"}, {"seed": 1.5}, {"seed": True}, {"seed": None}, {}, [3]):
        response = http.post("/__admin/seed", json=body)
        assert response.status_code == 400, body
        assert response.json()["errors"][0]["message"] == 'Body must be {"seed": n} with an integer n'
    assert http.get("/__admin/seed").json() == {"seed": 42}


# -- hangs ------------------------------------------------------------------------------


def test_hang_outlasts_the_client_timeout_then_drops_the_connection(http: httpx.Client) -> None:
    add_fault(http, kind="hang", delay=1, count=1)
    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        http.get("/api/v2/chart/song/platforms", timeout=0.3)
    assert 0.3 <= time.perf_counter() - started < 1
    assert http.get("/api/v2/chart/song/platforms").status_code == 200
    add_fault(http, kind="hang", delay=0.2, count=1)  # a client that waits longer gets no answer either
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/api/v2/chart/song/platforms", timeout=5)
    assert http.get("/__admin/requests").json()["faults_injected"]["hang"] == 2


def test_hang_default_is_past_the_chartsync_client_timeout() -> None:
    from chartsync.soundcharts.client import SoundchartsClient

    (timeout,) = (f.default for f in dataclasses.fields(SoundchartsClient) if f.name == "timeout")
    assert parse_fault_spec("hang").delay == HANG_DELAY > timeout
    assert parse_fault_spec("slow").delay == 1.0


def test_shutdown_releases_hanging_requests() -> None:
    srv = start_server(port=0, today=TODAY, faults=["hang"])
    errors: list[Exception] = []

    def call() -> None:
        try:
            httpx.get(f"{srv.url}/api/v2/chart/song/platforms", headers=AUTH, timeout=30)
        except httpx.HTTPError as exc:
            errors.append(exc)

    client = threading.Thread(target=call)
    client.start()
    deadline = time.monotonic() + 5
    while srv.state.faults.injected_json()["hang"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.perf_counter()
    srv.shutdown()
    client.join(5)
    assert not client.is_alive() and time.perf_counter() - started < 3
    assert len(errors) == 1


# -- command line -----------------------------------------------------------------------


def test_cli_starts_and_prints_its_url() -> None:
    include = Path(__file__).resolve().parents[3] / "include"
    env = {**os.environ, "PYTHONPATH": str(include)}
    command = [sys.executable, "-m", "soundcharts_emulator", "--port", "0", "--today", "2026-11-24",
               "--fault", "429:count=1,retry_after=2"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, "the emulator printed nothing"
        line = proc.stdout.readline().strip()
        assert line.startswith("soundcharts-emulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[-1]
        assert not url.endswith(":0")
        assert httpx.get(f"{url}/api/v2/chart/song/platforms", headers=AUTH).status_code == 429
        assert httpx.get(f"{url}/api/v2/chart/song/platforms", headers=AUTH).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
