"""The chart-sync REST API (plugin chart_sync_admin) inside a real `airflow api-server`.

One Airflow home and api-server for the module; the dag-processor starts only once the tests
that need "the DAG is not parsed yet" are done. Tests run in file order and share the chart DB,
so each works on its own charts.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import requests
from sqlalchemy import func, insert, select, update

from chartsync.services import gaps
from chartsync.store.tables import (
    chart,
    chart_sync_alert,
    chart_ranking,
    chart_ranking_quality,
    chart_sync_audit,
    chart_sync_execution,
    chart_sync_schedule,
)
from stacks import make_airflow_env, start_airflow, stop_airflow, wait_for, wait_for_next_run

pytestmark = pytest.mark.integration

API = "/chart-sync/api/sync"
GLOBAL_DAILY = "spotify-top-200-global-daily"
US_DAILY = "spotify-top-200-us-daily"
GB_DAILY = "spotify-top-200-gb-daily"
FR_DAILY = "spotify-top-200-fr-daily"
DE_DAILY = "spotify-top-200-de-daily"
US_WEEKLY = "spotify-top-200-us-weekly"


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def af(tmp_path_factory, emulator):
    base = tmp_path_factory.mktemp("api")
    db = base / "chart.db"
    env = make_airflow_env(base, emulator.url, json.dumps({"conn_type": "sqlite", "host": str(db)}),
                           f"sqlite:///{db}")
    env.chartsync("charts", "import", "--platform", "spotify")
    return env


@pytest.fixture(scope="module")
def services(af):
    services = start_airflow(af, components=("api-server",))
    yield services
    stop_airflow(services)


@pytest.fixture(scope="module")
def dag_processor(af, services):
    """Started late on purpose: until then no chart DAG is parsed."""
    processor = start_airflow(af, components=("dag-processor",))
    yield processor
    stop_airflow(processor)


class Client:
    def __init__(self, services, token: str | None = None, cookie: str | None = None):
        self.base = services.api_url
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.cookies = {"_token": cookie} if cookie else {}

    def request(self, method: str, path: str, **kw) -> requests.Response:
        url = self.base + (path if path.startswith("/api/v2") else API + path)
        return requests.request(method, url, headers=self.headers, cookies=self.cookies, timeout=60, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


@pytest.fixture(scope="module")
def admin(services):
    return Client(services, services.token("admin"))


@pytest.fixture(scope="module")
def viewer(services):
    return Client(services, services.token("viewer"))


@pytest.fixture(scope="module")
def anonymous(services):
    return Client(services)


@pytest.fixture(scope="module")
def engine(af):
    return af.engine()


def chart_id(engine, slug: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(chart.c.id).where(chart.c.slug == slug)).scalar_one()


def add_charts(engine, platform: str, count: int, frequency: str | None = "daily") -> list[int]:
    """Synthetic charts (never asked of the API when daily)."""
    with engine.begin() as conn:
        return [conn.execute(insert(chart).values(
            slug=f"{platform}-chart-{i}", name=f"{platform} chart {i}", platform=platform, frequency=frequency,
            created_at=datetime.now(UTC))).inserted_primary_key[0] for i in range(count)]


def counts(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(chart_sync_schedule)).scalar_one(),
                conn.execute(select(func.count()).select_from(chart_sync_audit)).scalar_one())


def error_fields(response) -> list[str]:
    return [str(item["loc"][-1]) for item in response.json()["detail"]]


def dag(admin: Client, dag_id: str) -> dict | None:
    r = admin.get(f"/api/v2/dags/{dag_id}")
    return r.json() if r.status_code == 200 else None


def create(admin: Client, **body) -> dict:
    r = admin.post("/schedules/", json=body)
    assert r.status_code == 201, r.text
    return r.json()


# -- the spec and authentication ------------------------------------------------------------------------
def test_openapi_spec_is_served(services):
    spec = requests.get(f"{services.api_url}/chart-sync/openapi.json", timeout=30).json()
    paths = set(spec["paths"])
    assert {f"/api/sync/{p}" for p in ("schedules/", "schedules/{schedule_id}/", "schedules/bulk/", "trigger/",
                                       "status/{chart_id}/", "gaps/", "gaps/heal/", "stats/", "audit/",
                                       "schedules/{schedule_id}/quality/")} <= paths
    assert spec["servers"] == [{"url": "/chart-sync"}]
    assert set(spec["paths"]["/api/sync/schedules/{schedule_id}/"]) == {"get", "put", "patch", "delete"}


EVERY_ENDPOINT = [
    ("GET", "/schedules/", None), ("POST", "/schedules/", {"chart_id": 1}), ("GET", "/schedules/1/", None),
    ("PUT", "/schedules/1/", {}), ("PATCH", "/schedules/1/", {}), ("DELETE", "/schedules/1/", None),
    ("POST", "/schedules/bulk/", {"action": "activate", "chart_ids": [1]}), ("POST", "/trigger/", {"chart_id": 1}),
    ("GET", "/status/1/", None), ("GET", "/gaps/", None), ("POST", "/gaps/heal/", {}), ("GET", "/stats/", None),
    ("GET", "/audit/", None), ("GET", "/schedules/1/quality/", None),
]
WRITES = [e for e in EVERY_ENDPOINT if e[0] != "GET"]
READS = [e for e in EVERY_ENDPOINT if e[0] == "GET" and not e[1].startswith("/schedules/1/")]  # no schedule 1 yet


def test_anonymous_requests_are_401(anonymous):
    for method, path, body in EVERY_ENDPOINT:
        r = anonymous.request(method, path, json=body)
        assert r.status_code == 401, (method, path, r.text)


def test_viewer_reads_but_may_not_write(viewer, engine):
    before = counts(engine)
    for method, path, _ in READS:
        r = viewer.request(method, path)
        assert r.status_code == 200, (method, path, r.text)
    for method, path, body in WRITES:
        r = viewer.request(method, path, json=body)
        assert r.status_code == 403, (method, path, r.text)
    assert counts(engine) == before


def test_a_forged_token_is_refused(services):
    r = Client(services, "not-a-jwt").get("/schedules/")
    assert r.status_code in (401, 403)


def test_a_dag_id_parameter_cannot_narrow_the_permission_check(viewer):
    r = viewer.post("/schedules/bulk/", params={"dag_id": "chart_sync__x"}, json={"action": "add", "chart_ids": [1]})
    assert r.status_code == 400 and "dag_id" in r.json()["detail"]


def test_the_ui_session_cookie_authenticates(services, engine):
    viewer = Client(services, cookie=services.token("viewer"))
    admin = Client(services, cookie=services.token("admin"))
    assert viewer.get("/schedules/").status_code == 200
    assert viewer.post("/schedules/", json={"chart_id": chart_id(engine, DE_DAILY)}).status_code == 403
    created = create(admin, chart_id=chart_id(engine, DE_DAILY), is_active=False)
    assert created["schedule"]["chart"]["slug"] == DE_DAILY


# -- validation -------------------------------------------------------------------------------------------
def test_bad_input_is_rejected_naming_the_field_and_writes_nothing(admin, engine):
    us = chart_id(engine, US_DAILY)
    before = counts(engine)
    r = admin.post("/schedules/", json={"chart_id": 999_999})
    assert r.status_code == 404 and "999999" in r.json()["detail"]
    cases = [
        ({"chart_id": us, "sync_frequency": "hourly"}, "sync_frequency"),
        ({"chart_id": us, "sync_frequency": "custom"}, "custom_interval_hours"),
        ({"chart_id": us, "sync_frequency": "custom", "custom_interval_hours": 0}, "custom_interval_hours"),
        ({"chart_id": us, "sync_frequency": "custom", "custom_interval_hours": -3}, "custom_interval_hours"),
        ({"chart_id": us, "sync_frequency": "custom", "custom_interval_hours": 745}, "custom_interval_hours"),
        ({"chart_id": us, "sync_frequency": "daily", "custom_interval_hours": 6}, "custom_interval_hours"),
        ({"chart_id": us, "sync_frequency": "cron", "cron_expression": "every day"}, "cron_expression"),
        ({"chart_id": us, "sync_frequency": "cron"}, "cron_expression"),
        ({"chart_id": us, "deadline_hours": 0}, "deadline_hours"),
        ({"chart_id": us, "is_active": "maybe"}, "is_active"),
        ({"chart_id": us, "colour": "red"}, "colour"),
        ({"sync_frequency": "daily"}, "chart_id"),
    ]
    for body, field in cases:
        r = admin.post("/schedules/", json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in error_fields(r), (body, r.text)
    assert admin.post("/trigger/", json={"chart_id": us, "period": "yesterday"}).status_code == 422
    assert admin.post("/schedules/bulk/", json={"action": "explode", "chart_ids": [us]}).status_code == 422
    assert admin.post("/schedules/bulk/", json={"action": "add", "chart_ids": []}).status_code == 422
    r = admin.post("/schedules/bulk/", json={"action": "remove", "chart_ids": [us], "options": {}})
    assert r.status_code == 422
    assert admin.post("/gaps/heal/", json={"slugs": ["no spaces allowed"]}).status_code == 422
    assert counts(engine) == before


def test_non_finite_numbers_are_a_422_whose_body_encodes(admin, engine):
    us = chart_id(engine, US_DAILY)
    [fresh] = add_charts(engine, "nonfinite", 1)
    sid = create(admin, chart_id=fresh)["schedule"]["id"]
    before = counts(engine)
    for number in ("NaN", "Infinity", "-Infinity", "1e999"):
        for method, path, body in (
                ("POST", "/schedules/", f'{{"chart_id": {us}, "deadline_hours": {number}}}'),
                ("PATCH", f"/schedules/{sid}/", f'{{"deadline_hours": {number}}}'),
                ("POST", "/schedules/bulk/",
                 f'{{"action": "add", "chart_ids": [{us}], "options": {{"deadline_hours": {number}}}}}')):
            r = requests.request(method, admin.base + API + path, data=body, cookies=admin.cookies, timeout=60,
                                 headers={**admin.headers, "Content-Type": "application/json"})
            assert r.status_code == 422, (method, path, number, r.status_code, r.text)
            [error] = r.json()["detail"]
            assert error["loc"][-1] == "deadline_hours", error
            assert error["msg"] == "Deadline (hours): must be a number of hours above 0 and at most 1488"
    assert counts(engine) == before


# -- the schedule lifecycle ----------------------------------------------------------------------------------
def test_create_detects_the_frequency_and_says_when_the_dag_appears(af, admin, engine):
    created = create(admin, chart_id=chart_id(engine, GLOBAL_DAILY))
    schedule = created["schedule"]
    assert schedule["sync_frequency"] == "daily"
    assert schedule["dag_id"] == created["dag_id"] == f"chart_sync__{GLOBAL_DAILY}"
    assert schedule["status"] == "active" and schedule["dag"] is None and not created["dag_in_airflow"]
    assert "next parse of dags/chart_sync_07.py" in created["message"]  # the shard file of its slug
    interval = af.env["AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"]  # what the api-server runs with
    assert f"min_file_process_interval = {interval} s" in created["message"]
    assert schedule["history_start"] <= (date.today() - timedelta(days=364)).isoformat()

    r = admin.post("/schedules/", json={"chart_id": chart_id(engine, GLOBAL_DAILY)})
    assert r.status_code == 409 and "already has a sync schedule" in r.json()["detail"]

    [unknown_frequency] = add_charts(engine, "nofreq", 1, frequency=None)
    assert create(admin, chart_id=unknown_frequency)["schedule"]["sync_frequency"] == "weekly"


def test_crud_round_trip_is_audited(admin, engine):
    created = create(admin, chart_id=chart_id(engine, US_DAILY), is_active=False, sync_historical_data=False)
    sid = created["schedule"]["id"]
    history_start = created["schedule"]["history_start"]
    assert created["schedule"]["status"] == "inactive"

    detail = admin.get(f"/schedules/{sid}/")
    assert detail.status_code == 200 and detail.json()["executions"] == []

    r = admin.patch(f"/schedules/{sid}/", json={"sync_frequency": "custom", "custom_interval_hours": 6})
    assert r.status_code == 200, r.text
    assert (r.json()["schedule"]["sync_frequency"], r.json()["schedule"]["custom_interval_hours"]) == ("custom", 6)
    assert r.json()["schedule"]["is_active"] is False  # PATCH leaves the rest alone

    r = admin.patch(f"/schedules/{sid}/", json={"sync_frequency": "daily"})
    assert r.status_code == 200 and r.json()["schedule"]["custom_interval_hours"] is None

    r = admin.patch(f"/schedules/{sid}/", json={"sync_frequency": "daily"})
    assert r.status_code == 200 and r.json()["changed"] is False

    r = admin.put(f"/schedules/{sid}/", json={"sync_frequency": "cron", "cron_expression": "0 6 * * *",
                                             "deadline_hours": 12})
    assert r.status_code == 200, r.text
    replaced = r.json()["schedule"]
    assert replaced["is_active"] is True and replaced["sync_historical_data"] is True  # PUT resets to defaults
    assert (replaced["cron_expression"], replaced["deadline_hours"]) == ("0 6 * * *", 12)
    assert replaced["history_start"] == history_start  # never moves

    for body, field in (({"is_active": None}, "is_active"), ({"chart_id": 3}, "chart_id"),
                        ({"sync_frequency": "custom"}, "custom_interval_hours")):
        r = admin.patch(f"/schedules/{sid}/", json=body)
        assert r.status_code == 422 and field in error_fields(r), (body, r.text)
    assert admin.patch("/schedules/999999/", json={"is_active": True}).status_code == 404

    r = admin.delete(f"/schedules/{sid}/")
    assert r.status_code == 200 and r.json()["chart_id"] == chart_id(engine, US_DAILY)
    assert admin.get(f"/schedules/{sid}/").status_code == 404
    assert admin.delete(f"/schedules/{sid}/").status_code == 404

    trail = admin.get("/audit/", params={"entity_id": sid, "entity": "schedule"}).json()
    assert [e["action"] for e in trail["items"]] == ["delete", "update", "update", "update", "create"]
    assert trail["total"] == 5
    assert {e["actor"] for e in trail["items"]} == {"admin"}
    delete_entry, put_entry = trail["items"][0], trail["items"][1]
    assert delete_entry["before"]["sync_frequency"] == "cron" and delete_entry["after"] is None
    assert put_entry["before"]["is_active"] is False and put_entry["after"]["is_active"] is True
    assert put_entry["after"]["cron_expression"] == "0 6 * * *"
    assert trail["items"][-1]["before"] is None and trail["items"][-1]["after"]["chart_id"] == chart_id(engine, US_DAILY)
    assert admin.get("/audit/", params={"actor": "viewer"}).json()["total"] == 0
    assert admin.get("/audit/", params={"actor": "admin", "limit": 2}).json()["total"] >= 5


def test_list_filters_and_pages(admin, engine):
    ids = add_charts(engine, "listtest", 5)
    frequencies = ["daily", "daily", "weekly", "monthly", "daily"]
    schedule_ids = [create(admin, chart_id=cid, sync_frequency=f, is_active=i != 1)["schedule"]["id"]
                    for i, (cid, f) in enumerate(zip(ids, frequencies, strict=True))]

    def listing(**params):
        r = admin.get("/schedules/", params={"platform": "listtest", **params})
        assert r.status_code == 200, r.text
        return r.json()

    everything = listing()
    assert everything["total"] == 5
    assert [i["chart"]["slug"] for i in everything["items"]] == [f"listtest-chart-{i}" for i in range(5)]
    item = everything["items"][0]
    assert item["chart"]["platform"] == "listtest" and "stats" in item and item["status"] == "active"
    assert listing(frequency="daily")["total"] == 3
    assert [i["id"] for i in listing(active="false")["items"]] == [schedule_ids[1]]
    page = listing(page=2, page_size=2)
    assert (page["total"], page["page"], page["page_size"], len(page["items"])) == (5, 2, 2, 2)
    assert [i["id"] for i in page["items"]] == schedule_ids[2:4]
    tail = listing(limit=2, offset=4)
    assert [i["id"] for i in tail["items"]] == schedule_ids[4:] and tail["offset"] == 4
    assert admin.get("/schedules/", params={"page_size": 0}).status_code == 422
    assert listing(overdue="true")["total"] == 0

    # created two days ago and never synced: a daily schedule is overdue after 36 h
    with engine.begin() as conn:
        conn.execute(update(chart_sync_schedule).where(chart_sync_schedule.c.id == schedule_ids[0])
                     .values(created_at=datetime.now(UTC) - timedelta(days=2)))
    overdue = listing(overdue="true")
    assert [i["id"] for i in overdue["items"]] == [schedule_ids[0]] and overdue["items"][0]["status"] == "overdue"
    assert listing(overdue="false")["total"] == 4
    add_execution(engine, ids[0], "success", datetime.now(UTC) - timedelta(hours=1))
    assert listing(overdue="true")["total"] == 0


def store_window_but(engine, chart_id_: int, missing: set[date]) -> list[date]:
    """Rankings for every period of the chart's history window except ``missing``; the window's periods."""
    (window,) = gaps.windows(engine, chart_id=chart_id_)
    periods = [window.first + timedelta(days=i) for i in range((window.last - window.first).days + 1)]
    with engine.begin() as conn:
        conn.execute(insert(chart_ranking), [
            {"chart_id": chart_id_, "period": d, "ranking_date": d.isoformat(), "entry_count": 1,
             "fetched_at": datetime.now(UTC)} for d in periods if d not in missing])
    return periods


def add_execution(engine, chart_id_: int, status: str, started: datetime, duration: float = 10.0,
                  error: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(insert(chart_sync_execution).values(
            chart_id=chart_id_, dag_id="chart_sync__x", run_id=f"r-{started.timestamp()}-{status}",
            period=started.date(), status=status, started_at=started,
            completed_at=started + timedelta(seconds=duration), duration_seconds=duration, error=error))


def test_stats_are_aggregated_per_schedule_and_overall(admin, engine):
    ids = add_charts(engine, "statstest", 2)
    for cid in ids:
        create(admin, chart_id=cid, sync_frequency="daily")
    now = datetime.now(UTC)
    add_execution(engine, ids[0], "success", now - timedelta(hours=5), 10)
    add_execution(engine, ids[0], "success", now - timedelta(hours=3), 30)
    add_execution(engine, ids[0], "failed", now - timedelta(hours=2), 20, error="boom")
    add_execution(engine, ids[1], "skipped", now - timedelta(days=40), 5)

    r = admin.get("/stats/", params={"platform": "statstest"})
    assert r.status_code == 200, r.text
    body = r.json()
    per = {i["chart_id"]: i["stats"] for i in body["schedules"]["items"]}
    first = per[ids[0]]
    assert (first["total_executions"], first["successful_executions"], first["failed_executions"]) == (3, 2, 1)
    assert first["success_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert first["average_duration_seconds"] == 20
    assert first["last_status"] == "failed" and first["last_error"] == "boom"
    assert 3 * 3600 - 60 < first["freshness_seconds"] < 3 * 3600 + 60
    assert per[ids[1]]["skipped_executions"] == 1 and per[ids[1]]["success_rate"] is None

    with engine.connect() as conn:
        e = chart_sync_execution.c
        total = conn.execute(select(func.count()).select_from(chart_sync_execution)).scalar_one()
        ok = conn.execute(select(func.count()).where(e.status == "success")).scalar_one()
        schedules = conn.execute(select(func.count()).select_from(chart_sync_schedule)).scalar_one()
    overall = body["overall"]
    assert overall["schedules"] == schedules
    assert overall["executions"]["total_executions"] == total
    assert overall["executions"]["successful_executions"] == ok

    recent = admin.get("/stats/", params={"platform": "statstest", "days": 30}).json()
    assert {i["chart_id"]: i["stats"]["total_executions"] for i in recent["schedules"]["items"]} == {ids[0]: 3,
                                                                                                     ids[1]: 0}
    assert recent["overall"]["executions"]["total_executions"] == total - 1


def test_status_of_a_chart(admin, viewer, engine):
    [bare, scheduled] = add_charts(engine, "statustest", 2)
    r = viewer.get(f"/status/{bare}/")
    assert r.status_code == 200 and r.json()["status"] == "not-scheduled" and r.json()["schedule"] is None
    assert viewer.get("/status/999999/").status_code == 404

    sid = create(admin, chart_id=scheduled, sync_frequency="daily")["schedule"]["id"]
    add_execution(engine, scheduled, "success", datetime.now(UTC) - timedelta(hours=2))
    yesterday = date.today() - timedelta(days=1)
    periods = store_window_but(engine, scheduled, {yesterday - timedelta(days=n) for n in range(5)})
    body = viewer.get(f"/status/{scheduled}/").json()
    assert body["status"] == "active" and body["overdue"] is False and body["schedule"]["id"] == sid
    assert body["latest_execution"]["status"] == "success"
    coverage = body["coverage"]  # live: no gap audit has run
    assert (coverage["expected_periods"], coverage["stored_periods"], coverage["gap_periods"]) == (
        len(periods), len(periods) - 5, 5)
    assert coverage["audited_at"] is None
    assert viewer.get(f"/schedules/{sid}/").json()["coverage"] == coverage
    assert body["dag"] is None and body["next_run_at"] is None  # not parsed yet
    assert viewer.get(f"/schedules/{sid}/").json()["executions"][0]["status"] == "success"


def test_quality_of_a_schedule_summary_and_flagged_rankings(admin, viewer, anonymous, engine):
    [cid] = add_charts(engine, "qualitytest", 1)
    sid = create(admin, chart_id=cid, sync_frequency="daily")["schedule"]["id"]
    first, now = date(2026, 10, 1), datetime.now(UTC)
    flags = {2: ["short", "gaps"], 4: ["churn"], 5: ["short"]}  # day 0: stored before the checks
    with engine.begin() as conn:
        for day in range(6):
            period = first + timedelta(days=day)
            rid = conn.execute(insert(chart_ranking).values(
                chart_id=cid, period=period, ranking_date=period.isoformat(), entry_count=143,
                fetched_at=now)).inserted_primary_key[0]
            if day:
                conn.execute(insert(chart_ranking_quality).values(
                    ranking_id=rid, chart_id=cid, period=period, entry_count=143, expected_count=200,
                    missing_positions=57 if day == 2 else 0, new_share=0.4 if day == 4 else 0.05,
                    usual_new_share=0.05, flags=flags.get(day, []), flagged=day in flags, checked_at=now))
    assert anonymous.get(f"/schedules/{sid}/quality/").status_code == 401
    r = viewer.get(f"/schedules/{sid}/quality/", params={"page_size": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["schedule_id"], body["chart_id"], body["slug"]) == (sid, cid, "qualitytest-chart-0")
    summary = body["summary"]
    assert (summary["rankings_stored"], summary["rankings_checked"], summary["rankings_flagged"]) == (6, 5, 3)
    assert summary["flag_counts"] == {"short": 2, "gaps": 1, "missing_streams": 0, "churn": 1,
                                      "previous_mismatch": 0}
    assert summary["last_flagged_period"] == "2026-10-06"
    rankings = body["rankings"]
    assert (rankings["total"], rankings["page_size"], len(rankings["items"])) == (3, 2, 2)
    newest = rankings["items"][0]
    assert (newest["period"], newest["status"], newest["flags"]) == ("2026-10-06", "flagged", ["short"])
    assert newest["notes"] == [{"flag": "short", "text": "143 of 200 entries"}]
    assert newest["checks"]["expected_count"] == 200 and newest["checks"]["previous_mismatches"] is None
    gaps_only = viewer.get(f"/schedules/{sid}/quality/", params={"flag": "gaps"}).json()["rankings"]
    assert [(i["period"], [n["text"] for n in i["notes"]]) for i in gaps_only["items"]] == [
        ("2026-10-03", ["143 of 200 entries", "57 positions missing"])]
    assert viewer.get("/schedules/999999/quality/").status_code == 404
    bad = viewer.get(f"/schedules/{sid}/quality/", params={"flag": "nonsense"})
    assert bad.status_code == 422 and "flag" in json.dumps(bad.json()["detail"])


# -- Airflow: triggers and the paused state ------------------------------------------------------------
def test_alert_feed_is_filtered_and_paged(admin, viewer, anonymous, engine):
    cid = chart_id(engine, DE_DAILY)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(chart_sync_alert), [
            {"kind": kind, "chart_id": cid, "dag_id": f"chart_sync__{DE_DAILY}", "run_id": f"scheduled__{i}",
             "period": date(2026, 11, 1) + timedelta(days=i), "message": f"{kind} {i}", "channels": {},
             "created_at": now - timedelta(days=age)}
            for i, (kind, age) in enumerate([("deadline", 0), ("failure", 1), ("failure", 2), ("failure", 40)])])
    assert anonymous.get("/alerts/").status_code == 401
    everything = viewer.get("/alerts/", params={"chart_id": cid})
    assert everything.status_code == 200
    assert everything.json()["total"] == 4
    assert [a["message"] for a in everything.json()["items"]] == ["deadline 0", "failure 1", "failure 2",
                                                                   "failure 3"]
    recent_failures = admin.get("/alerts/", params={"chart_id": cid, "kind": "failure", "days": 30,
                                                    "page_size": 1}).json()
    assert recent_failures["total"] == 2 and len(recent_failures["items"]) == 1
    first = recent_failures["items"][0]
    assert (first["chart"], first["kind"], first["period"]) == (DE_DAILY, "failure", "2026-11-02")
    assert "dag_run" in first["links"]
    bad = admin.get("/alerts/", params={"kind": "nonsense"})
    assert bad.status_code == 422 and "kind" in json.dumps(bad.json()["detail"])


def test_trigger_before_the_dag_is_parsed_is_a_409(admin, engine):
    gb = chart_id(engine, GB_DAILY)
    r = admin.post("/trigger/", json={"chart_id": gb})
    assert r.status_code == 404 and "no sync schedule" in r.json()["detail"]
    create(admin, chart_id=gb)
    r = admin.post("/trigger/", json={"chart_id": gb})
    assert r.status_code == 409 and "next DAG parse" in r.json()["detail"], r.text
    r = admin.post("/trigger/", json={"chart_id": gb, "period": (date.today() + timedelta(days=2)).isoformat()})
    assert r.status_code == 422 and error_fields(r) == ["period"]


def test_trigger_creates_a_dag_run_and_is_active_drives_the_paused_state(admin, viewer, engine, dag_processor):
    gb = chart_id(engine, GB_DAILY)
    dag_id = f"chart_sync__{GB_DAILY}"
    wait_for(lambda: dag(admin, dag_id), 120, f"{dag_id} to be parsed", interval=1)
    assert dag(admin, dag_id)["is_paused"] is False  # active schedule -> unpaused at creation

    period = date.today() - timedelta(days=3)
    r = admin.post("/trigger/", json={"chart_id": gb, "period": period.isoformat()})
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["dag_id"] == dag_id and run["state"] == "queued" and run["period"] == period.isoformat()
    airflow_run = admin.get(f"/api/v2/dags/{dag_id}/dagRuns/{run['run_id']}")
    assert airflow_run.status_code == 200
    assert airflow_run.json()["logical_date"].startswith(period.isoformat())
    assert airflow_run.json()["triggering_user_name"] == "admin"

    again = admin.post("/trigger/", json={"chart_id": gb, "period": period.isoformat()})
    assert again.status_code == 200, again.text  # the queued run of that period, not a second one
    assert again.json()["run_id"] == run["run_id"] and again.json()["created"] is False
    latest = admin.post("/trigger/", json={"chart_id": gb})
    assert latest.status_code == 201 and latest.json()["period"] is None
    assert admin.post("/trigger/", json={"chart_id": gb}).json()["run_id"] == latest.json()["run_id"]
    runs = admin.get(f"/api/v2/dags/{dag_id}/dagRuns").json()
    assert runs["total_entries"] == 2  # triggering twice made no second run of either

    history_start = date.fromisoformat(admin.get(f"/status/{gb}/").json()["schedule"]["history_start"])
    for bad in ("0001-01-01", (history_start - timedelta(days=1)).isoformat(), date.today().isoformat()):
        r = admin.post("/trigger/", json={"chart_id": gb, "period": bad})
        assert r.status_code == 422 and error_fields(r) == ["period"], (bad, r.text)
    r = admin.post("/trigger/", json={"chart_id": gb, "period": history_start.isoformat()})
    assert r.status_code == 422 and "next in the catchup" in r.text  # the scheduler creates that run now
    assert admin.get(f"/api/v2/dags/{dag_id}/dagRuns").json()["total_entries"] == 2  # no green run of nothing
    assert viewer.post("/trigger/", json={"chart_id": gb}).status_code == 403
    trail = admin.get("/audit/", params={"entity": "chart", "entity_id": gb}).json()["items"]
    triggers = [t["after"]["run_id"] for t in trail if t["action"] == "trigger"]
    assert triggers == [latest.json()["run_id"], run["run_id"]]  # a returned run is not a new trigger

    sid = admin.get("/schedules/", params={"platform": "spotify"}).json()
    sid = next(i["id"] for i in sid["items"] if i["chart_id"] == gb)
    assert admin.patch(f"/schedules/{sid}/", json={"is_active": False}).json()["dag_in_airflow"] is True
    assert dag(admin, dag_id)["is_paused"] is True
    status = admin.get(f"/status/{gb}/").json()
    assert status["dag"]["is_paused"] is True and status["next_run_at"] is None and status["status"] == "inactive"
    admin.patch(f"/schedules/{sid}/", json={"is_active": True})
    assert dag(admin, dag_id)["is_paused"] is False
    assert admin.get(f"/status/{gb}/").json()["dag"]["dag_id"] == dag_id


def test_bulk_actions_report_each_chart(admin, engine, dag_processor):
    fr, us_weekly = chart_id(engine, FR_DAILY), chart_id(engine, US_WEEKLY)
    r = admin.post("/schedules/bulk/", json={"action": "add", "chart_ids": [fr, us_weekly, 999_999],
                                             "options": {"is_active": False, "sync_historical_data": False}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["outcome"] for i in body["results"]] == ["done", "done", "not-found"]
    assert body["summary"] == {"done": 2, "not-found": 1}
    listed = {i["chart_id"]: i for i in admin.get("/schedules/", params={"platform": "spotify"}).json()["items"]}
    assert listed[fr]["is_active"] is False and listed[us_weekly]["sync_frequency"] == "weekly"
    assert listed[us_weekly]["chart"]["publication_weekday"] == 3  # learnt from the API (Thursday)

    r = admin.post("/schedules/bulk/", json={"action": "add", "chart_ids": [fr]})
    assert r.json()["results"][0]["outcome"] == "conflict"
    r = admin.post("/schedules/bulk/", json={"action": "activate", "chart_ids": [fr, fr]})
    assert [i["outcome"] for i in r.json()["results"]] == ["done", "unchanged"]

    dag_id = f"chart_sync__{FR_DAILY}"
    wait_for(lambda: dag(admin, dag_id), 120, f"{dag_id} to be parsed", interval=1)
    r = admin.post("/schedules/bulk/", json={"action": "trigger", "chart_ids": [fr, chart_id(engine, DE_DAILY)]})
    outcomes = [i["outcome"] for i in r.json()["results"]]
    assert outcomes[0] == "done" and r.json()["results"][0]["run_id"]
    assert outcomes[1] in ("done", "dag-not-parsed")

    r = admin.post("/schedules/bulk/", json={"action": "deactivate", "chart_ids": [fr]})
    assert r.json()["results"][0]["outcome"] == "done"
    assert dag(admin, dag_id)["is_paused"] is True
    r = admin.post("/schedules/bulk/", json={"action": "remove", "chart_ids": [fr, us_weekly, fr]})
    assert [i["outcome"] for i in r.json()["results"]] == ["done", "done", "not-found"]


# -- gaps (chartsync.services.gaps) -------------------------------------------------------------------------------
def test_gaps_are_listed_and_healed_with_a_backfill(af, services, admin, viewer, engine, dag_processor):
    gb = chart_id(engine, GB_DAILY)
    start = date.today() - timedelta(days=40)
    store_window_but(engine, gb, {start + timedelta(days=n) for n in range(3)})
    assert viewer.get("/gaps/", params={"chart_id": 999999}).status_code == 404
    r = viewer.get("/gaps/", params={"chart_id": gb})
    assert r.status_code == 200, r.text
    # no scheduler has run the DAG's catchup yet: the missing periods wait for it, no heal reaches them
    assert r.json()["items"] == [] and [w["periods"] for w in r.json()["waiting"]] == [3]
    [result] = admin.post("/gaps/heal/", json={"slugs": [GB_DAILY]}).json()["results"]
    assert result["status"] == "nothing-to-heal" and "wait for the catchup" in result["message"], result
    assert admin.get("/api/v2/backfills", params={"dag_id": f"chart_sync__{GB_DAILY}"}).json()["total_entries"] == 0

    # the schedule without history, created 41 days ago: Airflow's front is the newest period (no catchup; this
    # stack runs no scheduler), so the missing periods are behind it
    with engine.begin() as conn:
        conn.execute(update(chart_sync_schedule).where(chart_sync_schedule.c.chart_id == gb).values(
            sync_historical_data=False, created_at=datetime.now(UTC) - timedelta(days=41)))
    wait_for_next_run(services, f"chart_sync__{GB_DAILY}", date.today() - timedelta(days=1))
    r = viewer.get("/gaps/", params={"chart_id": gb})
    assert r.json()["waiting"] == [] and r.json()["total"] == 1, r.json()
    [gap] = r.json()["items"]
    assert (gap["slug"], gap["periods"], gap["start"]) == (GB_DAILY, 3, start.isoformat())
    assert gap["backfill_command"].startswith(f"airflow backfill create --dag-id chart_sync__{GB_DAILY}")

    r = admin.post("/gaps/heal/", json={"slugs": [GB_DAILY]})
    assert r.status_code == 200, r.text
    [result] = r.json()["results"]
    assert result["status"] == "created", result
    backfill = admin.get(f"/api/v2/backfills/{result['backfill_id']}")
    assert backfill.status_code == 200 and backfill.json()["dag_id"] == f"chart_sync__{GB_DAILY}"
    trail = admin.get("/audit/", params={"entity": "backfill", "entity_id": result["backfill_id"]}).json()
    assert trail["items"][0]["action"] == "heal" and trail["items"][0]["after"]["slug"] == GB_DAILY
    assert viewer.get("/gaps/", params={"chart_id": gb}).json()["items"][0]["heal"] == "running"
    r = admin.post("/gaps/heal/", json={"slugs": [GB_DAILY]})
    assert r.json()["results"][0]["status"] == "already-running"
