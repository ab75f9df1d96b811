"""The emulator's quota mode over real HTTP: spending, exhaustion, the free usage endpoint, the admin route."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from soundcharts_emulator.__main__ import build_parser
from soundcharts_emulator.server import QUOTA_EXHAUSTED_MESSAGE, QUOTA_START, EmulatorServer, start_server

AUTH = {"x-app-id": "soundcharts", "x-api-key": "soundcharts"}
PLATFORMS = "/api/v2/chart/song/platforms"
USAGE = "/api/v2/team/usage"


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    srv = start_server(host="127.0.0.1", port=0, today="2026-11-24", quota=3)
    yield srv
    srv.shutdown()


@pytest.fixture
def http(server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
        client.post("/__admin/reset")
        yield client
        client.post("/__admin/reset")


def remaining(response: httpx.Response) -> int:
    return int(response.headers["x-quota-remaining"])


def test_each_call_spends_one_and_says_what_is_left(http: httpx.Client) -> None:
    assert [remaining(http.get(PLATFORMS)) for _ in range(3)] == [2, 1, 0]


def test_an_exhausted_quota_is_a_429_with_soundcharts_error_body_spending_nothing(http: httpx.Client) -> None:
    for _ in range(3):
        assert http.get(PLATFORMS).status_code == 200
    refused = http.get(PLATFORMS)
    assert refused.status_code == 429 and remaining(refused) == 0
    assert refused.json() == {"errors": [{"key": "quota", "code": 429, "message": QUOTA_EXHAUSTED_MESSAGE}]}
    assert "retry-after" not in refused.headers and "x-ratelimit-reset" not in refused.headers
    assert http.get("/__admin/quota").json() == {"remaining": 0, "start": 3, "consumed": 3}
    assert http.get("/__admin/requests").json()["total"] == 4  # counted as a request, not as quota


def test_the_usage_endpoint_spends_nothing_and_carries_the_header(http: httpx.Client) -> None:
    http.get(PLATFORMS)
    first, second = http.get(USAGE), http.get(USAGE)
    assert first.status_code == second.status_code == 200
    assert remaining(first) == remaining(second) == 2
    assert first.json()["object"]["quota"] == {"remaining": 2, "consumed": 1}
    assert http.get(USAGE, headers={"x-api-key": "nope"}).status_code == 403


def test_the_usage_endpoint_answers_when_the_quota_is_exhausted(http: httpx.Client) -> None:
    http.post("/__admin/quota", json={"remaining": 0})
    usage = http.get(USAGE)
    assert usage.status_code == 200 and remaining(usage) == 0


def test_unauthenticated_calls_spend_nothing(server: EmulatorServer, http: httpx.Client) -> None:
    assert httpx.get(f"{server.url}{PLATFORMS}").status_code == 401
    assert http.get("/__admin/quota").json()["remaining"] == 3


def test_the_admin_route_sets_reads_and_resets_the_quota(http: httpx.Client) -> None:
    assert http.post("/__admin/quota", json={"remaining": 50}).json() == {"remaining": 50, "start": 3, "consumed": 0}
    assert remaining(http.get(PLATFORMS)) == 49
    assert http.post("/__admin/quota", json={"remaining": None}).json()["remaining"] == 3
    http.post("/__admin/quota", json={"remaining": 0})
    http.post("/__admin/reset")
    assert http.get("/__admin/quota").json()["remaining"] == 3  # reset: the starting quota again
    for bad in ({"remaining": -1}, {"remaining": "7"}, {"remaining": True}, {}, [1]):
        assert http.post("/__admin/quota", json=bad).status_code == 400


def test_the_rate_limit_fault_stays_a_rate_limit(http: httpx.Client) -> None:
    http.post("/__admin/quota", json={"remaining": 10})
    http.post("/__admin/faults", json={"kind": "429", "count": 1, "retry_after": 2})
    limited = http.get(PLATFORMS)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    assert "maximum request count" in limited.json()["errors"][0]["message"]
    assert remaining(limited) == 9


def test_the_default_quota_is_effectively_unlimited_and_the_flag_sets_it() -> None:
    assert QUOTA_START >= 1_000_000
    assert build_parser().parse_args([]).quota == QUOTA_START
    assert build_parser().parse_args(["--quota", "25"]).quota == 25
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--quota", "-1"])
