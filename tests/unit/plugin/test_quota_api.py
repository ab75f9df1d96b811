"""The quota through the REST API, in-process (the plugin's app mounted at ``/chart-sync``, its access checked
by Airflow's SimpleAuthManager, on a SQLite chart DB; the caller is given, not read from a token, so no
metadata DB is needed: tests/unit/plugin/test_door.py checks tokens): ``GET /api/quota/`` reports what the
store recorded, the same body as ``chartsync quota -o json``; estimates come back with the writes that cost
calls."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import insert
from starlette.testclient import TestClient

from chartsync.core.quota import QuotaReading
from chartsync.seam import orchestration
from chartsync.store import quota as quota_store
from chartsync.store.tables import chart, chart_sync_schedule
from conftest import migrated_sqlite

API = "/chart-sync/api"
NOW = datetime.now(UTC)


@pytest.fixture
def engine(tmp_path, monkeypatch):
    path = tmp_path / "chart.db"
    engine = migrated_sqlite(path)
    monkeypatch.setenv("AIRFLOW_CONN_CHART_DB", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    monkeypatch.delenv("CHARTSYNC_QUOTA_RESERVE", raising=False)
    monkeypatch.setattr(orchestration, "set_paused", lambda dag_id, paused: False)  # no DAG parsed
    monkeypatch.setattr(orchestration, "dag_states", lambda dag_ids: {})
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=1, slug="quota-daily", name="Quota Daily", platform="spotify",
                                          frequency="daily", max_results=200, created_at=NOW))
    yield engine
    engine.dispose()


class Caller:
    role = "viewer"


@pytest.fixture
def caller():
    return Caller()


@pytest.fixture
def client(engine, caller):
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user

    from chart_sync_admin import security
    from chart_sync_admin.app import create_app
    from chart_sync_admin.paths import URL_PREFIX

    init_auth_manager()
    app = create_app()
    for who in (get_user, security.current_user):  # the API's caller and the pages' viewer
        app.dependency_overrides[who] = lambda: SimpleAuthManagerUser(username=caller.role, role=caller.role)
    server = FastAPI()
    server.mount(URL_PREFIX, app)
    with TestClient(server, raise_server_exceptions=False, base_url="http://127.0.0.1") as client:
        yield client


def test_the_quota_never_seen(client):
    r = client.get(f"{API}/quota/")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["remaining"] is None and body["seen_at"] is None and body["state"] == "never seen"
    assert (body["spent_24h"], body["spent_30d"], body["reserve"], body["below_reserve"]) == (0, 0, 1000, False)


def test_the_quota_reports_the_reading_recorded_and_the_calls_spent(client, engine):
    quota_store.record_reading(engine, QuotaReading(4321, NOW - timedelta(minutes=3), {}), "response")
    quota_store.add_calls(engine, 1, 120, NOW.date())
    body = client.get(f"{API}/quota/").json()
    assert body["remaining"] == 4321 and body["seen_at"].startswith(str(NOW.date()))
    assert (body["spent_24h"], body["spent_30d"]) == (120, 120) and body["burn_per_day"] == 120.0
    assert body["runs_out_on"] == str(NOW.date() + timedelta(days=36))
    assert body["charts"] == [{"chart_id": 1, "slug": "quota-daily", "calls": 120}]
    assert body["state"] == "above the reserve of 1,000" and body["below_reserve"] is False


def test_refreshing_the_quota_needs_write_access(client):
    assert client.post(f"{API}/quota/refresh/").status_code == 403  # a viewer


def test_the_quota_is_in_the_openapi_document(client):
    spec = client.get("/chart-sync/openapi.json").json()
    assert {"get"} <= set(spec["paths"]["/api/quota/"]) and "post" in spec["paths"]["/api/quota/refresh/"]
    assert "runs_out_on" in spec["components"]["schemas"]["QuotaOut"]["properties"]
    assert "estimate" in spec["components"]["schemas"]["BulkOut"]["properties"]


def test_adding_a_schedule_answers_with_its_estimate(client, engine, caller):
    quota_store.record_reading(engine, QuotaReading(1200, NOW, {}), "usage")
    caller.role = "admin"
    r = client.post(f"{API}/sync/schedules/", json={"chart_id": 1, "sync_frequency": "daily"})
    assert r.status_code == 201, r.text
    estimate = r.json()["estimate"]
    assert estimate["calls"] > 700 and estimate["remaining"] == 1200 and estimate["reserve"] == 1000
    assert estimate["leaves"] == 1200 - estimate["calls"] and "below the reserve of 1,000" in estimate["warning"]


def test_a_bulk_add_answers_with_the_estimate_made_before_it(client, engine, caller):
    caller.role = "admin"
    r = client.post(f"{API}/sync/schedules/bulk/", json={"action": "add", "chart_ids": [1, 99],
                                                          "options": {"sync_historical_data": False}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["summary"] == {"done": 1, "not-found": 1}
    assert body["estimate"] == {"calls": 2, "remaining": None, "reserve": 1000, "leaves": None, "warning": None}
    again = client.post(f"{API}/sync/schedules/bulk/", json={"action": "add", "chart_ids": [1]}).json()
    assert again["estimate"]["calls"] == 0  # already scheduled: the add refuses it, and it costs nothing
    activate = client.post(f"{API}/sync/schedules/bulk/", json={"action": "activate", "chart_ids": [1]}).json()
    assert activate["estimate"] is None


def test_the_cli_prints_the_body_the_api_answers(client, engine, capsys):
    from chartsync import cli

    quota_store.record_reading(engine, QuotaReading(4321, NOW - timedelta(minutes=1), {}), "usage")
    quota_store.add_calls(engine, None, 30, NOW.date())
    assert cli.main(["quota", "-o", "json"]) == 0
    (printed,) = json.loads(capsys.readouterr().out)
    answered = client.get(f"{API}/quota/").json()
    seen = [datetime.fromisoformat(body.pop("seen_at").replace("Z", "+00:00")) for body in (printed, answered)]
    assert printed == answered and printed["remaining"] == 4321 and seen[0] == seen[1]  # ISO 8601 either way


def test_the_stats_page_shows_the_quota_card(client, engine, monkeypatch):
    page = client.get("/chart-sync/ui/stats")
    assert page.status_code == 200, page.text[:500]
    assert 'data-quota-state="never"' in page.text and "Never seen" in page.text
    monkeypatch.setenv("CHARTSYNC_QUOTA_RESERVE", "5000")
    quota_store.record_reading(engine, QuotaReading(4321, NOW - timedelta(minutes=1), {}), "usage")
    quota_store.add_calls(engine, 1, 77, NOW.date())
    page = client.get("/chart-sync/ui/stats").text
    assert 'data-quota-state="below"' in page and 'data-quota-remaining="4321"' in page
    assert "Below the reserve of 5,000: history waits, the newest periods go on." in page
    assert 'data-quota-chart="quota-daily"' in page and 'data-quota-spent-30d="77"' in page


def test_the_pages_ask_the_estimate_before_an_add(client, engine):
    quota_store.record_reading(engine, QuotaReading(1000, NOW, {}), "usage")
    found = client.get(f"{API}/quota/estimate/add/", params={"chart_ids": [1, 99],
                                                             "sync_historical_data": "false"}).json()
    assert found["calls"] == 2 and found["leaves"] == 998  # the newest period, two pages; 99 is no chart
    assert "below the reserve of 1,000" in found["warning"] and found["text"].startswith("about 2 API calls; 1,000")
    year = client.get(f"{API}/quota/estimate/add/", params={"chart_ids": 1, "sync_frequency": "weekly"}).json()
    assert 50 <= year["calls"] / 2 <= 53  # a year of weeks, two pages each
    assert client.get(f"{API}/quota/estimate/add/", params={"chart_ids": 1, "sync_frequency": "hourly"}
                      ).status_code == 422
    assert client.get(f"{API}/quota/estimate/add/").status_code == 422  # no chart named


def test_the_charts_page_says_what_an_add_costs_before_and_after_it(client, engine, caller):
    from chart_sync_admin import csrf

    caller.role = "admin"
    client.headers["Authorization"] = "Bearer any"  # the caller is given; the form's token is made from this
    quota_store.record_reading(engine, QuotaReading(500, NOW, {}), "usage")
    form = {csrf.FIELD: csrf.token_for("any"), "action": "add", "chart_id": "1", "frequency": "daily",
            "sync_immediately": "on", "sync_historical_data": "on"}
    asked = client.post("/chart-sync/ui/charts/bulk", data=form)
    assert asked.status_code == 200 and "Add to sync schedule?" in asked.text
    assert "Soundcharts API quota: about 7" in asked.text and "500 left, leaves -" in asked.text
    assert 'class="estimate-warning" role="alert"' in asked.text and "more than the 500 left" in asked.text
    done = client.post("/chart-sync/ui/charts/bulk", data=form | {"confirmed": "1"})
    assert done.status_code == 200 and "Add to sync schedule: 1 done. Quota: about 7" in done.text
    assert "flash-warning" in done.text  # done, but below the reserve
    page = client.get("/chart-sync/ui/schedules").text
    assert 'data-estimate="/chart-sync/api/quota/estimate/heal/?slugs=quota-daily"' in page


def test_the_pages_ask_the_estimate_before_a_heal(client, engine, monkeypatch):
    assert client.get(f"{API}/quota/estimate/heal/", params={"slugs": "quota-daily"}).status_code == 404  # no schedule
    monkeypatch.setattr(orchestration, "catchup_fronts", lambda dag_ids: {})
    with engine.begin() as conn:
        conn.execute(insert(chart_sync_schedule).values(chart_id=1, is_active=True, sync_frequency="daily",
                                                        history_start=NOW.date() - timedelta(days=5),
                                                        created_at=NOW, updated_at=NOW))
    found = client.get(f"{API}/quota/estimate/heal/", params={"slugs": "quota-daily"}).json()
    assert found["calls"] == 5 * 2 and found["remaining"] is None  # five missing days, two pages each
    assert found["text"] == "about 10 API calls; the quota left is not known yet"
