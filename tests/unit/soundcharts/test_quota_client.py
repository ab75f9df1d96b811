"""The Soundcharts client and the quota, against an emulator in quota mode: readings from the headers,
the free usage endpoint, a quota 429 raised at once, a rate-limit 429 still waited out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests

from chartsync.seam import metrics
from chartsync.soundcharts import client as client_module
from chartsync.soundcharts.client import SoundchartsClient, SoundchartsRateLimited
from chartsync.soundcharts.errors import SoundchartsQuotaExhausted
from soundcharts_emulator.server import start_server


@pytest.fixture(scope="module")
def emulator():
    server = start_server(host="127.0.0.1", port=0, quota=100)
    yield server
    server.shutdown()


@pytest.fixture
def admin(emulator):
    def call(method: str, route: str, body: dict | None = None) -> dict:
        response = requests.request(method, f"{emulator.url}/__admin/{route}", json=body, timeout=5)
        response.raise_for_status()
        return response.json()

    call("POST", "reset")
    yield call
    call("POST", "reset")


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", slept.append)
    return slept


@pytest.fixture
def gauges(monkeypatch) -> list[tuple]:
    sent: list[tuple] = []
    monkeypatch.setattr(metrics, "gauge", lambda metric, value, **tags: sent.append((metric, value, tags)))
    return sent


@pytest.fixture
def client(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SOUNDCHARTS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": "soundcharts"}))
    return SoundchartsClient(max_attempts=3)


def test_the_last_reading_comes_from_the_headers_and_sets_the_gauge(client, admin, gauges):
    assert client.quota is None
    before = datetime.now(UTC)
    client.charts_by_platform("deezer")
    spent = admin("GET", "quota")["consumed"]
    assert spent == client.request_count >= 1
    assert client.quota.remaining == 100 - spent
    assert before <= client.quota.seen_at <= datetime.now(UTC) and client.quota.seen_at.tzinfo is not None
    assert gauges[-1] == (metrics.QUOTA_REMAINING, 100 - spent, {})


def test_an_error_response_updates_the_reading_too(client, admin):
    with pytest.raises(client_module.SoundchartsNotFound):
        client.ranking("no-such-chart")
    assert client.quota.remaining == 99


def test_usage_spends_nothing_and_keeps_the_body(client, admin):
    admin("POST", "quota", {"remaining": 40})
    reading = client.usage()
    assert reading.remaining == 40 and client.quota == reading
    assert reading.details["object"]["quota"]["remaining"] == 40
    assert client.usage().remaining == 40
    assert admin("GET", "quota")["remaining"] == 40


def test_a_quota_429_raises_after_one_request_without_sleeping(client, admin, sleeps):
    admin("POST", "quota", {"remaining": 0})
    with pytest.raises(SoundchartsQuotaExhausted) as err:
        client.charts_by_platform("deezer")
    assert isinstance(err.value, SoundchartsRateLimited)
    assert err.value.remaining == 0 and err.value.retry_after is None
    assert "quota is consumed" in str(err.value)
    assert client.request_count == 1 and sleeps == []
    assert admin("GET", "requests")["total"] == 1
    assert client.quota.remaining == 0


def test_a_rate_limit_429_is_still_waited_out_and_retried(client, admin, sleeps):
    admin("POST", "faults", {"kind": "429", "count": 1, "retry_after": 2, "path_contains": "/by-platform/"})
    charts = client.charts_by_platform("deezer")
    assert charts and sleeps == [2.0]
    assert client.request_count >= 2


def test_usage_with_the_quota_exhausted_still_reads_it(client, admin, sleeps):
    admin("POST", "quota", {"remaining": 0})
    assert client.usage().remaining == 0 and sleeps == []


def test_a_response_without_the_header_keeps_the_last_reading(client):
    seen = datetime.now(UTC) - timedelta(minutes=5)
    client.quota = client_module.QuotaReading(7, seen, {})
    client._read_quota(requests.Response())
    assert client.quota.remaining == 7 and client.quota.seen_at == seen
