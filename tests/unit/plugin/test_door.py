"""Every input is checked at the door: hostile paths, queries, forms and bodies get a 4xx, never a 500,
and a refused request writes nothing.

The plugin's app runs in-process, mounted at ``/chart-sync`` as the API server mounts it, behind
Airflow's own auth manager (a JWT, its access checks on the test process's metadata DB, ``airflow_db``)
and on a chart DB on PostgreSQL, which refuses NUL in text. tests/integration/test_api_schemathesis.py sends the same
kinds of input to a real api-server.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, func, insert, select
from starlette.testclient import TestClient

from chartsync.services import schedules
from chartsync.store.migrate import upgrade
from chartsync.store.tables import chart, chart_sync_audit, chart_sync_schedule

API = "/chart-sync/api/sync"
UI = "/chart-sync/ui"
NOT_IDS = ("1.0", "01", "+1", "%201", "1%20", "1_0", "%C2%B2", "%D9%A1", "0x1", "1e0", "-1", "0", "2147483648",
           "9" * 30)


@pytest.fixture(scope="module")
def engine(postgres, airflow_db):
    url = postgres.url(postgres.create_database("door_chart"))
    engine = create_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        for slug, frequency in (("door-daily", "daily"), ("door-weekly", "weekly")):
            conn.execute(insert(chart).values(slug=slug, name=slug, platform="spotify", frequency=frequency,
                                              publication_weekday=4 if frequency == "weekly" else None,
                                              created_at=datetime.now(UTC)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_CHART_DB", postgres.conn_json(url.rsplit("/", 1)[1]))
        schedules.create_schedule(engine, 1, actor="test", sync_historical_data=False)
        yield engine


@pytest.fixture(scope="module")
def tokens(engine):
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = init_auth_manager()
    return {role: manager.generate_jwt(SimpleAuthManagerUser(username=role, role=role)) for role in ("admin", "viewer")}


@pytest.fixture(scope="module")
def client(engine, tokens):
    from chart_sync_admin.paths import URL_PREFIX
    from chart_sync_admin.app import create_app

    server = FastAPI()
    server.mount(URL_PREFIX, create_app())
    with TestClient(server, raise_server_exceptions=False, base_url="http://127.0.0.1") as client:
        client.headers["Authorization"] = f"Bearer {tokens['admin']}"
        yield client


@pytest.fixture(scope="module")
def csrf_token(tokens) -> str:
    from chart_sync_admin import csrf

    return csrf.token_for(tokens["admin"])


@pytest.fixture
def no_write(engine):
    """The test's requests leave the schedules and the audit log as they were."""
    def counts():
        with engine.connect() as conn:
            return [conn.scalar(select(func.count()).select_from(table)) for table in (chart_sync_schedule,
                                                                                         chart_sync_audit)]
    before = counts()
    yield
    assert counts() == before


# -- ids are plain digits ----------------------------------------------------------------------------------
@pytest.mark.parametrize("not_id", NOT_IDS)
def test_an_api_id_in_any_other_spelling_names_nothing(client, no_write, not_id):
    for method in ("GET", "DELETE"):
        response = client.request(method, f"{API}/schedules/{not_id}/")
        assert response.status_code == 422, (method, not_id, response.text)
    assert client.request("GET", f"{API}/status/{not_id}/").status_code == 422
    assert client.get(f"{API}/schedules/1/").status_code == 200  # schedule 1 is still there


def test_the_422_names_the_rule_and_the_spec_keeps_integers(client):
    detail = client.get(f"{API}/schedules/1.0/").json()["detail"][0]
    assert detail["loc"] == ["path", "schedule_id"] and "plain digits" in detail["msg"]
    parameter = client.get("/chart-sync/openapi.json").json()["paths"]["/api/sync/schedules/{schedule_id}/"][
        "delete"]["parameters"][0]
    assert parameter["schema"]["type"] == "integer" and parameter["schema"]["minimum"] == 1


@pytest.mark.parametrize("query", ["page=01", "page=%D9%A1", "page_size=%C2%B2", "limit=+5", "offset=1.0",
                                   "history=%2020"])
def test_an_api_query_integer_is_plain_digits(client, query):
    path = f"{API}/schedules/1/?{query}" if query.startswith("history") else f"{API}/schedules/?{query}"
    assert client.get(path).status_code == 422


@pytest.mark.parametrize("not_id", NOT_IDS)
def test_a_page_id_in_any_other_spelling_is_no_page(client, not_id):
    for path in (f"{UI}/schedules/{not_id}", f"{UI}/charts/{not_id}/ranking"):
        response = client.request("GET", path)
        assert response.status_code == 404, (path, response.text[:200])
        assert "No such page" in response.text


@pytest.mark.parametrize("field", ["single=activate:%C2%B2", "single=activate:%D9%A1", "single=trigger:01",
                                   "single=activate:1.0", "action=activate&schedule_id=%D9%A1",
                                   "action=activate&schedule_id=1&schedule_id=x"])
def test_a_form_id_in_any_other_spelling_refuses_the_form(client, csrf_token, no_write, field):
    response = client.post(f"{UI}/schedules/bulk", content=f"{field}&confirmed=1&csrf_token={csrf_token}",
                           headers={"Content-Type": "application/x-www-form-urlencoded"}, follow_redirects=False)
    assert response.status_code == 422, response.text[:300]
    assert "is not an id" in response.text


def test_a_form_count_in_other_digits_is_a_validation_error(client, csrf_token, no_write):
    response = client.post(f"{UI}/schedules/1/config", data={
        "sync_frequency": "custom", "custom_interval_hours": "\u0661\u0662", "csrf_token": csrf_token},
        follow_redirects=False)
    assert response.status_code == 422 and "whole number" in response.text


def test_a_page_query_integer_in_other_digits_is_read_as_absent(client):
    assert client.get(f"{UI}/schedules?page=%D9%A1").status_code == 200


# -- control characters ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [f"{UI}/songs/%00", f"{UI}/songs/a%00b", f"{UI}/dags/chart_sync__%00",
                                  f"{UI}/dags/%00", f"{UI}/dags/%00/runs/%00", f"{UI}/dags/chart_sync__door-daily/runs/a%1Fb",
                                  f"{UI}/songs/a%7Fb", f"{UI}/songs/a%C2%85b", f"{UI}/static/%00",
                                  f"{API}/schedules/%00/", f"{API}/status/1%00/"])
def test_a_control_character_in_a_path_is_no_page(client, path):
    response = client.request("GET", path)
    assert response.status_code == 404, response.text[:300]


def test_a_fetch_of_a_song_with_nul_in_its_id_is_no_page(client, csrf_token, no_write):
    response = client.post(f"{UI}/songs/a%00b/fetch", data={"csrf_token": csrf_token}, follow_redirects=False)
    assert response.status_code == 404


@pytest.mark.parametrize("path", [f"{API}/audit/?actor=a%00b", f"{API}/schedules/?platform=%01", f"{UI}/charts?q=%00",
                                  f"{UI}/alerts?chart=%0A", f"{API}/schedules/?x%00=1", f"{UI}/stats?days=30%00"])
def test_a_control_character_in_a_query_is_refused(client, path):
    response = client.request("GET", path)
    assert response.status_code == 422, response.text[:300]


def test_the_api_refusal_names_the_parameter(client):
    assert client.get(f"{API}/audit/?actor=a%00b").json()["detail"][0]["loc"] == ["query", "actor"]


@pytest.mark.parametrize("body", [
    {"action": "add\x00", "chart_ids": [2]},
    {"action": "add", "chart_ids": [2], "options": {"cron_expression": "0 6 * * *\x01", "sync_frequency": "cron"}},
    {"slugs": ["door-daily\x00"]},
    {"action": "add", "chart_ids": [2], "\x00": 1},
])
def test_a_control_character_in_a_json_body_is_refused(client, no_write, body):
    path = f"{API}/gaps/heal/" if "slugs" in body else f"{API}/schedules/bulk/"
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text


def test_a_lone_surrogate_in_a_json_body_is_refused(client, no_write):
    response = client.post(f"{API}/schedules/bulk/", content=b'{"action": "\\ud800", "chart_ids": [2]}',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422


@pytest.mark.parametrize("field", ["next", "action", "chart_id", "frequency"])
def test_a_control_character_in_a_form_field_is_refused(client, csrf_token, no_write, field):
    form = {"action": "add", "chart_id": "2", "frequency": "daily", "confirmed": "1", "csrf_token": csrf_token}
    form[field] = form.get(field, "/chart-sync/ui/charts") + "\x00"
    response = client.post(f"{UI}/charts/bulk", data=form, follow_redirects=False)
    assert response.status_code == 422, response.text[:300]


# -- sizes ---------------------------------------------------------------------------------------------------
def test_a_body_over_the_cap_is_refused_by_its_length(client, no_write):
    from chart_sync_admin.door import MAX_BODY_BYTES

    body = json.dumps({"action": "add", "chart_ids": [2], "pad": "x" * MAX_BODY_BYTES})
    response = client.post(f"{API}/schedules/bulk/", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_a_streamed_body_over_the_cap_is_refused_while_it_streams(client, no_write):
    def chunks():  # no Content-Length: the body is sent chunked
        yield b'{"action": "add", "chart_ids": [2], "pad": "'
        for _ in range(40):
            yield b"x" * 64 * 1024
        yield b'"}'

    response = client.post(f"{API}/schedules/bulk/", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_a_multipart_form_is_refused(client, csrf_token, no_write):
    response = client.post(f"{UI}/charts/bulk", data={"action": "add", "chart_id": "2", "csrf_token": csrf_token},
                           files={"f": ("a.txt", b"x")}, follow_redirects=False)
    assert response.status_code == 415


def test_an_address_over_the_cap_is_refused(client):
    from chart_sync_admin.door import MAX_URL_BYTES

    assert client.get(f"{UI}/charts?q={'x' * 1000}").status_code == 200
    assert client.get(f"{UI}/charts?q={'x' * MAX_URL_BYTES}").status_code == 414


def test_a_422_echoes_a_few_hundred_characters_of_a_huge_input(client, no_write):
    response = client.post(f"{API}/schedules/", json={"chart_id": "9" * 900_000, "sync_frequency": "x" * 50_000})
    assert response.status_code == 422
    assert len(response.content) < 5_000
    assert client.post(f"{API}/schedules/bulk/", json={"action": "add", "chart_ids": list(range(1, 900))}
                       ).status_code == 422


def test_json_nested_too_deep_for_the_encoder_is_a_4xx(client, no_write):
    deep = "[" * 900 + "]" * 900
    response = client.post(f"{API}/schedules/bulk/", content=f'{{"action": "add", "chart_ids": [{deep}]}}',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text[:300]
    response = client.post(f"{API}/schedules/bulk/", content="[" * 100_000, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500


def test_valid_requests_pass_the_door(client, csrf_token):
    assert client.get(f"{API}/schedules/?page=1&page_size=10&platform=spotify").status_code == 200
    assert client.get(f"{API}/audit/?actor=test&entity_id=0").status_code == 200
    assert client.get(f"{UI}/schedules/1").status_code == 200
    assert client.get(f"{UI}/songs/no-such-song").status_code == 404
    assert client.get(f"{UI}/dags/other_dag/runs/manual__1").status_code == 200
    response = client.post(f"{UI}/schedules/bulk", data={"single": "deactivate:1", "confirmed": "1",
                                                         "csrf_token": csrf_token}, follow_redirects=False)
    assert response.status_code == 303
