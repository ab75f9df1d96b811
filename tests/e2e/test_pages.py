"""The admin pages in headless Chromium against a real Airflow api-server (and dag-processor).

One Airflow home for the module: the chart DB is seeded in-process from the emulator (charts,
schedules, synced periods, a failure, the gap audit, alerts, synthetic execution history), then
the api-server starts and a dag-processor parses the chart DAGs (then stops). No scheduler runs, so
triggered runs and backfills stay queued and the data under the pages stays put. Tests run in file order
and each works on its own charts. Screenshots of every page (1280 px and 390 px wide) go to
test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

import pytest
import requests
from sqlalchemy import case, delete, func, insert, select, update

from chartsync.core import alerts as alert_values
from chartsync.settings import AUDIENCE_DAG_ID
from chartsync.store import alerts as alert_store
from chartsync.services import audience
from chartsync.services import charts
from chartsync.services import coverage
from chartsync.services import gaps
from chartsync.services import schedules
from chartsync.store.tables import (
    chart,
    chart_ranking,
    chart_ranking_entry,
    chart_ranking_quality,
    chart_sync_execution,
    chart_sync_schedule,
    track,
)
from chartsync.core.outcomes import RunRef
from chartsync.core.quota import QuotaReading
from chartsync.services import budget
from chartsync.store import quota as quota_store
from chartsync.store.executions import record_failure
from chartsync.core.calendar import Frequency, latest_complete_period
from chartsync.soundcharts.client import SoundchartsClient
from chartsync.services.sync import sync_period
from conftest import point_airflow_at
from stacks import AirflowServices, finish_catchups, make_airflow_env, start_airflow, stop_airflow, wait_for

pytestmark = pytest.mark.integration

UI = "/chart-sync/ui"
GLOBAL_DAILY = "spotify-top-200-global-daily"  # active, 7 synced days, one failed period, alerts
US_WEEKLY = "spotify-top-200-us-weekly"  # active weekly, 2 synced weeks; healed in a test
GB_DAILY = "spotify-top-200-gb-daily"  # inactive
DE_WEEKLY = "spotify-top-200-de-weekly"  # active, created 40 days ago, never synced: overdue
DEEZER_FR = "deezer-top-100-fr-daily"  # active, mostly failing: a red success rate
FR_DAILY, DE_DAILY, US_DAILY = "spotify-top-200-fr-daily", "spotify-top-200-de-daily", "spotify-top-200-us-daily"
TODAY = datetime.now(UTC).date()
SYNCED_DAYS = [TODAY - timedelta(days=d) for d in range(2, 9)]
FAILED_DAY = TODAY - timedelta(days=10)
CHART_DAGS = [f"chart_sync__{s}" for s in (GLOBAL_DAILY, US_WEEKLY, GB_DAILY, DE_WEEKLY, DEEZER_FR)]
# GLOBAL_DAILY's rankings by their checks: the newest flagged churn, one flagged twice, the oldest stored before
# the checks (no row), the others clean
QUALITY = {SYNCED_DAYS[0]: ["churn"], SYNCED_DAYS[3]: ["missing_streams", "previous_mismatch"], SYNCED_DAYS[-1]: None}


# -- the site ----------------------------------------------------------------------------------------------
@dataclass
class Site:
    services: AirflowServices
    engine: object
    env: dict

    @property
    def api_url(self) -> str:
        return self.services.api_url

    def api(self, method: str, path: str, user: str = "admin", **kw) -> requests.Response:
        token = self.services.token(user)
        return requests.request(method, self.api_url + path, headers={"Authorization": f"Bearer {token}"},
                                timeout=60, **kw)

    def chart_id(self, slug: str) -> int:
        return charts.get_chart(self.engine, slug=slug).id

    def schedule_id(self, slug: str) -> int:
        return schedules.load_rows(self.engine, slug)[0].id

    def schedule(self, slug: str):
        rows = schedules.load_rows(self.engine, slug)
        return rows[0] if rows else None


def seed(engine, client: SoundchartsClient) -> None:
    """Charts, schedules, synced periods, failures, history, the gap audit and alerts."""
    for platform in ("spotify", "deezer"):
        charts.import_charts(engine, client, platform)
    ids = {}
    for slug, options in ((GLOBAL_DAILY, {}), (US_WEEKLY, {}), (GB_DAILY, {"is_active": False}),
                          (DE_WEEKLY, {}), (DEEZER_FR, {})):
        row = charts.get_chart(engine, slug=slug)
        weekday = charts.learn_publication_weekday(engine, client, row) if row.frequency == "weekly" else None
        ids[slug] = schedules.add_schedule(engine, row, weekday=weekday, actor="e2e-seed", **options)
    with engine.begin() as conn:  # an old schedule that never synced
        conn.execute(update(chart_sync_schedule).where(chart_sync_schedule.c.id == ids[DE_WEEKLY])
                     .values(created_at=datetime.now(UTC) - timedelta(days=40)))

    def run(slug: str) -> RunRef:
        return RunRef(charts.get_chart(engine, slug=slug).id, f"chart_sync__{slug}", "scheduled__e2e")

    for day in SYNCED_DAYS:
        sync_period(engine, client, run(GLOBAL_DAILY), GLOBAL_DAILY, day)
    started = datetime.now(UTC) - timedelta(seconds=20)
    record_failure(engine, run(GLOBAL_DAILY), FAILED_DAY, started,
                   "SoundchartsServerError: HTTP 503 from /api/v2.14/chart/song/...: upstream unavailable")
    weekday = charts.get_chart(engine, slug=US_WEEKLY).publication_weekday
    newest = latest_complete_period(Frequency.WEEKLY, datetime.now(UTC), weekday).start
    for day in (newest, newest - timedelta(days=7)):
        sync_period(engine, client, run(US_WEEKLY), US_WEEKLY, day)
    sync_period(engine, client, run(DEEZER_FR), DEEZER_FR, TODAY - timedelta(days=2))
    for days_ago in (3, 4):
        record_failure(engine, run(DEEZER_FR), TODAY - timedelta(days=days_ago), started, "HTTP 429: rate limited")
    _synthetic_history(engine, charts.get_chart(engine, slug=GLOBAL_DAILY).id)
    _quality(engine, charts.get_chart(engine, slug=GLOBAL_DAILY).id)
    configs = [schedules.ScheduleConfig.from_row(r) for r in schedules.load_rows(engine) if r.is_active]
    gaps.refresh_expected_periods(engine, client, configs)  # gaps and coverage are live: nothing to recompute
    _alerts(engine)
    _quota(engine)


QUOTA_SEEN = 4321  # the quota the API said is left, newest of the readings the seeding's calls recorded


def _quota(engine) -> None:
    """The quota card's data: a reading newer than the seeding's, and a month of calls for the top spenders."""
    quota_store.record_reading(engine, QuotaReading(QUOTA_SEEN, datetime.now(UTC), {}), "usage")
    for days_ago, slug, calls in ((1, GLOBAL_DAILY, 400), (3, US_WEEKLY, 120), (12, DEEZER_FR, 60)):
        quota_store.add_calls(engine, charts.get_chart(engine, slug=slug).id, calls, TODAY - timedelta(days=days_ago))


def _synthetic_history(engine, chart_id: int) -> None:
    """Three weeks of past executions (no period), so the stats plots have a shape."""
    now = datetime.now(UTC)
    rows = []
    for days_ago in range(1, 22):
        for n in range(3):
            status = "failed" if (days_ago % 5 == 0 and n == 0) else "skipped" if days_ago % 7 == 0 and n == 1 \
                else "success"
            started = now - timedelta(days=days_ago, hours=n)
            duration = 2.0 + (days_ago % 4) + n * 0.5
            rows.append({"chart_id": chart_id, "dag_id": f"chart_sync__{GLOBAL_DAILY}",
                         "run_id": f"scheduled__history_{days_ago}_{n}", "try_number": 1, "period": None,
                         "status": status, "started_at": started, "completed_at": started + timedelta(seconds=duration),
                         "duration_seconds": duration, "error": "HTTP 500" if status == "failed" else None})
    with engine.begin() as conn:
        conn.execute(insert(chart_sync_execution), rows)


def _quality(engine, chart_id: int) -> None:
    """GLOBAL_DAILY's quality rows as QUALITY says (whatever the sync wrote is replaced)."""
    with engine.begin() as conn:
        for day in SYNCED_DAYS:
            ranking_id = conn.execute(select(chart_ranking.c.id).where(
                chart_ranking.c.chart_id == chart_id, chart_ranking.c.period == day)).scalar_one()
            conn.execute(delete(chart_ranking_quality).where(chart_ranking_quality.c.ranking_id == ranking_id))
            flags = QUALITY.get(day, [])
            if flags is None:
                continue
            conn.execute(insert(chart_ranking_quality).values(
                ranking_id=ranking_id, chart_id=chart_id, period=day, entry_count=200, expected_count=200,
                missing_positions=0, no_streams_share=0.3 if "missing_streams" in flags else 0.0,
                new_share=0.4 if "churn" in flags else 0.05, usual_new_share=0.05, previous_checked=190,
                previous_mismatches=12 if "previous_mismatch" in flags else 0, flags=flags, flagged=bool(flags),
                checked_at=datetime.now(UTC)))


def _alerts(engine) -> None:
    def alert(kind, slug, summary, period=None):
        row = charts.get_chart(engine, slug=slug)
        sid = schedules.load_rows(engine, slug)[0].id
        a = alert_values.Alert(kind=kind, summary=summary, chart_id=row.id, chart=slug, chart_name=row.name,
                         schedule_id=sid, dag_id=f"chart_sync__{slug}", run_id="scheduled__e2e" if period else None,
                         period=period)
        alert_store.record_alert(engine, a, alert_values.format_message(a, ""), {"webhook": "sent"})

    alert(alert_values.FAILURE, GLOBAL_DAILY, f"The sync of {FAILED_DAY} failed after 4 tries.", FAILED_DAY)
    alert(alert_values.OVERDUE, DE_WEEKLY, "No successful sync for 40 days.")
    alert(alert_values.DEADLINE, DEEZER_FR, "Not synced within 12 hours of the period's end.", TODAY - timedelta(days=3))


@pytest.fixture(scope="module")
def airflow_site(tmp_path_factory, emulator):
    base = tmp_path_factory.mktemp("ui")
    db = base / "chart.db"
    af = make_airflow_env(base, emulator.url, json.dumps({"conn_type": "sqlite", "host": str(db)}),
                          f"sqlite:///{db}")
    engine = af.engine()
    with mock.patch.dict(os.environ, {"AIRFLOW_CONN_SOUNDCHARTS_DEFAULT": af.env["AIRFLOW_CONN_SOUNDCHARTS_DEFAULT"]}):
        seed(engine, SoundchartsClient(max_attempts=2))
    services = start_airflow(af, components=("api-server",))
    site = Site(services, engine, af.env)
    try:
        # The dag-processor only has to put the DAGs into Airflow once: stopped then, it cannot
        # hold SQLite's write lock while a page creates runs or backfills.
        processor = start_airflow(af, components=("dag-processor",))
        wanted = {*CHART_DAGS, AUDIENCE_DAG_ID}

        def parsed():
            r = site.api("GET", "/api/v2/dags", params={"limit": 100})
            return r.status_code == 200 and wanted <= {d["dag_id"] for d in r.json()["dags"]}

        try:
            wait_for(parsed, 180, "the chart DAGs to be parsed", interval=2)
        finally:
            stop_airflow(processor)
        finish_catchups(af)  # the seeded history is what the catchups left: its missing periods are gaps
        before = point_airflow_at(af.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])  # the tests' own reads of Airflow
        try:
            yield site
        finally:
            point_airflow_at(before)
    finally:
        stop_airflow(services)


# -- helpers -------------------------------------------------------------------------------------------
def flash(page) -> str:
    return page.locator(".flash").first.inner_text()


def follow(page, target) -> None:
    """Click what leads to another page, and return once that page has loaded: a read before it sees the old one."""
    with page.expect_navigation():
        target.click()


def badge_of(page, slug: str) -> str:
    return page.locator("tr", has_text=slug).locator("td:not(.name) > .badge").first.inner_text().strip()


def confirmed(page) -> str:
    """The page's own confirmation step (a <dialog>, no confirm(): see test_airflow_ui.py): its question, then Confirm."""
    dialog = page.locator("dialog#confirm-dialog")
    dialog.wait_for(state="visible")
    text = dialog.locator("p").inner_text()
    with page.expect_navigation():  # the form goes on once confirmed: wait for the page it answers with
        dialog.get_by_role("button", name="Confirm").click()
    return text


def select_rows(page, slugs: list[str], name: str = "chart_id") -> None:
    for slug in slugs:
        page.locator("tr", has_text=slug).locator(f"input[name={name}]").check()


# -- anonymous, login, the Airflow UI ------------------------------------------------------------------------
def test_anonymous_is_sent_to_the_airflow_login_and_back(airflow_site, new_session):
    session = new_session()
    r = requests.get(f"{airflow_site.api_url}{UI}/schedules?status=active", allow_redirects=False, timeout=30)
    assert r.status_code == 303
    assert r.headers["location"] == "/auth/login?next=%2Fchart-sync%2Fui%2Fschedules%3Fstatus%3Dactive"
    for path in ("/charts", "/stats", "/alerts", f"/schedules/{airflow_site.schedule_id(GLOBAL_DAILY)}"):
        assert requests.get(f"{airflow_site.api_url}{UI}{path}", allow_redirects=False, timeout=30).status_code == 303
    post = requests.post(f"{airflow_site.api_url}{UI}/charts/bulk", data={"action": "remove", "chart_id": "1"},
                         allow_redirects=False, timeout=30)
    assert post.status_code == 303 and post.headers["location"].startswith("/auth/login?next=")
    session.page.goto(f"{UI}/schedules?status=active")
    session.page.wait_for_url(re.compile(r"/auth/login\?next="))
    session.screenshot("login")
    session.login("admin", "admin", f"{UI}/schedules?status=active")  # the real login form brings us back
    assert session.page.locator("h1").inner_text().startswith("Sync schedules")
    assert session.page.locator("select[name=status]").input_value() == "active"


def test_pages_sit_in_the_airflow_ui_navigation(airflow_site, new_session):
    plugins = airflow_site.api("GET", "/api/v2/plugins").json()["plugins"]
    views = {v["url_route"]: v for p in plugins if p["name"] == "chart_sync_admin" for v in p["external_views"]}
    assert set(views) == {"chart-sync-charts", "chart-sync-schedules", "chart-sync-stats", "chart-sync-alerts",
                          "chart-sync-audit", "chart-sync-dag", "chart-sync-run"}
    assert {v["category"] for v in views.values() if v["destination"] == "nav"} == {"Chart sync"}
    assert views["chart-sync-dag"]["href"].endswith("/ui/dags/{DAG_ID}")
    assert views["chart-sync-run"]["destination"] == "dag_run"
    session = new_session("admin", landing="/plugin/chart-sync-schedules")
    frame = session.page.frame_locator("iframe")
    assert frame.locator("h1").first.inner_text(timeout=60_000).startswith("Sync schedules")
    session.page.wait_for_timeout(500)
    session.screenshot("airflow-ui-embedded")


# -- charts page -------------------------------------------------------------------------------------------
def test_charts_page_lists_every_chart_with_status_and_filters(airflow_site, new_session):
    session = new_session("admin")
    page = session.page
    total = airflow_site.engine.connect().execute(select(func.count()).select_from(chart)).scalar()
    assert page.locator("tbody tr").count() == total
    assert badge_of(page, GLOBAL_DAILY).endswith("Active")
    assert badge_of(page, GB_DAILY).endswith("Inactive")
    assert badge_of(page, DE_WEEKLY).endswith("Overdue")
    assert badge_of(page, FR_DAILY) == "Not scheduled"
    row = page.locator("tr", has_text=GLOBAL_DAILY)
    assert row.get_by_role("link", name="DAG").get_attribute("href") == f"/dags/chart_sync__{GLOBAL_DAILY}"
    assert "daily" in row.inner_text() and "spotify" in row.inner_text()
    session.screenshot("charts")
    page.get_by_label("Search").fill("fr-daily")
    follow(page, page.get_by_role("button", name="Filter"))
    assert sorted(page.locator("tbody tr .mono").all_inner_texts()) == sorted(
        [FR_DAILY, "deezer-top-100-fr-daily"])
    page.goto(f"{UI}/charts?status=not-scheduled&platform=spotify")
    slugs = page.locator("tbody tr .mono").all_inner_texts()
    assert FR_DAILY in slugs and GLOBAL_DAILY not in slugs and all(s.startswith("spotify") for s in slugs)


def test_charts_bulk_add_and_trigger_with_confirmation(airflow_site, new_session):
    session = new_session("admin")
    page = session.page
    select_rows(page, [FR_DAILY, DE_DAILY])
    page.get_by_label("Action").select_option("add")
    page.get_by_label("Frequency (add)").select_option("daily")
    page.get_by_label("a year of history").uncheck()
    page.get_by_role("button", name="Apply").click()
    assert confirmed(page) == "Add to sync schedule: 2 charts. Continue?"
    page.wait_for_url(f"**{UI}/charts")
    assert flash(page).startswith("Add to sync schedule: 2 done.")
    assert "chart_sync__spotify-top-200-fr-daily appears at the next parse" in flash(page)
    for slug in (FR_DAILY, DE_DAILY):
        row = airflow_site.schedule(slug)
        assert row.sync_frequency == "daily" and not row.sync_historical_data
    assert badge_of(page, FR_DAILY).endswith("Active")
    session.screenshot("charts-after-add")
    # adding it again is a conflict, reported per chart
    select_rows(page, [FR_DAILY])
    page.get_by_role("button", name="Apply").click()
    confirmed(page)
    assert flash(page).startswith("Add to sync schedule: 1 conflict.")
    assert "already has a sync schedule" in flash(page)
    # trigger a manual sync
    select_rows(page, [GLOBAL_DAILY])
    page.get_by_label("Action").select_option("trigger")
    page.get_by_role("button", name="Apply").click()
    confirmed(page)
    assert flash(page).startswith("Trigger manual sync: 1 done.")
    run_id = re.search(r"run (manual__chartsync__\S+)", flash(page)).group(1)
    r = airflow_site.api("GET", f"/api/v2/dags/chart_sync__{GLOBAL_DAILY}/dagRuns/{run_id}")
    assert r.status_code == 200 and r.json()["state"] == "queued"
    # a chart without schedule cannot be triggered; the message says why
    select_rows(page, [US_DAILY])
    page.get_by_label("Action").select_option("trigger")
    page.get_by_role("button", name="Apply").click()
    confirmed(page)
    assert flash(page).startswith("Trigger manual sync: 1 not-found.") and "add one first" in flash(page)


def test_charts_bulk_remove_without_javascript_asks_on_a_page(airflow_site, new_session):
    session = new_session("admin", javascript=False)
    page = session.page
    assert airflow_site.schedule(DE_DAILY) is not None  # added by the test before
    select_rows(page, [DE_DAILY])
    page.get_by_label("Action").select_option("remove")
    page.get_by_role("button", name="Apply").click()
    # no script, no dialog: the server asks on a page of its own
    assert page.locator("h1").inner_text() == "Remove from sync schedule?"
    assert "Spotify Top 200 Germany Daily (spotify-top-200-de-daily)" in page.locator("ul.names").inner_text()
    assert airflow_site.schedule(DE_DAILY) is not None  # nothing happened yet
    session.screenshot("confirm")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"**{UI}/charts")
    assert flash(page).startswith("Remove from sync schedule: 1 done.")
    assert airflow_site.schedule(DE_DAILY) is None
    assert badge_of(page, DE_DAILY) == "Not scheduled"
    assert session.dialogs == []


def test_nothing_selected_says_so(airflow_site, new_session):
    session = new_session("admin")
    session.page.get_by_role("button", name="Apply").click()
    assert flash(session.page) == "Select at least one chart."


# -- schedules page --------------------------------------------------------------------------------------------
def test_schedules_page_shows_status_rates_counts_and_coverage(airflow_site, new_session):
    session = new_session("admin", landing=f"{UI}/schedules")
    page = session.page
    row = page.locator("tr", has_text=GLOBAL_DAILY)
    rate = row.locator("td.num .rate")
    with airflow_site.engine.connect() as conn:
        chart_id = airflow_site.chart_id(GLOBAL_DAILY)
        counts = dict(conn.execute(select(chart_sync_execution.c.status, func.count()).where(
            chart_sync_execution.c.chart_id == chart_id).group_by(chart_sync_execution.c.status)).all())
    expected = round(counts["success"] / (counts["success"] + counts["failed"]), 4)  # as stats.success_rate
    assert rate.inner_text() == f"{expected * 100:.1f}%"
    assert "rate-warn" in rate.get_attribute("class")  # 80-95 %: amber
    assert "rate-bad" in page.locator("tr", has_text=DEEZER_FR).locator("td.num .rate").get_attribute("class")
    assert f"{sum(counts.values())} total" in row.inner_text()
    assert f"{counts['success']} / {counts['failed']} / {counts.get('skipped', 0)}" in row.inner_text()
    assert "row-overdue" in page.locator("tr", has_text=DE_WEEKLY).get_attribute("class")
    assert badge_of(page, DE_WEEKLY) == "Overdue"
    coverage_row = gaps_coverage(airflow_site, GLOBAL_DAILY)
    assert f"{coverage_row:.1f}%" in row.inner_text()
    session.screenshot("schedules")
    # sort by success rate, worst first
    follow(page, page.get_by_role("link", name="Success rate"))
    follow(page, page.get_by_role("link", name=re.compile("Success rate")))
    assert "desc=1" in page.url and "sort=success_rate" in page.url
    names = page.locator("tbody tr td.name .mono").all_inner_texts()
    assert names.index(US_WEEKLY) < names.index(GLOBAL_DAILY) < names.index(DEEZER_FR)
    assert set(names[-3:]) == {DE_WEEKLY, GB_DAILY, FR_DAILY}  # never executed: last either way
    # filter and page
    page.goto(f"{UI}/schedules?status=overdue")
    assert page.locator("tbody tr td.name .mono").all_inner_texts() == [DE_WEEKLY]
    page.goto(f"{UI}/schedules?frequency=weekly&platform=spotify")
    assert sorted(page.locator("tbody tr td.name .mono").all_inner_texts()) == sorted([DE_WEEKLY, US_WEEKLY])


def execution_row(page, period: date):
    """The history's row of a period (one row per period, its tries folded in)."""
    return page.locator(f'tr.execution[data-period="{period}"]')


def gaps_coverage(site, slug: str) -> float:
    return gaps.chart_coverage(site.engine, site.chart_id(slug)).coverage_percent


def test_schedule_actions_single_and_bulk(airflow_site, new_session):
    session = new_session("admin", landing=f"{UI}/schedules")
    page = session.page
    page.locator("tr", has_text=US_WEEKLY).get_by_role("button", name="Deactivate").click()
    assert confirmed(page) == "Deactivate Spotify Top 200 United States Weekly? Its DAG is paused."
    assert flash(page).startswith("Deactivate: 1 done.")
    assert not airflow_site.schedule(US_WEEKLY).is_active
    assert airflow_site.api("GET", f"/api/v2/dags/chart_sync__{US_WEEKLY}").json()["is_paused"] is True
    assert badge_of(page, US_WEEKLY) == "Inactive"
    page.locator("tr", has_text=US_WEEKLY).get_by_role("button", name="Activate").click()
    confirmed(page)
    assert flash(page).startswith("Activate: 1 done.")
    assert airflow_site.api("GET", f"/api/v2/dags/chart_sync__{US_WEEKLY}").json()["is_paused"] is False
    # bulk: deactivate two, one of them already inactive
    select_rows(page, [GB_DAILY, DEEZER_FR], "schedule_id")
    page.get_by_label("Action").select_option("deactivate")
    page.get_by_role("button", name="Apply").click()
    assert confirmed(page) == "Deactivate: 2 schedules. Continue?"
    assert flash(page).startswith("Deactivate: 1 done, 1 unchanged.")
    assert not airflow_site.schedule(DEEZER_FR).is_active
    # heal the weekly chart's gaps: one Airflow backfill over exactly its gap ranges
    ranges = gaps.list_gaps(airflow_site.engine, airflow_site.chart_id(US_WEEKLY))
    page.locator("tr", has_text=US_WEEKLY).get_by_role("button", name="Heal").click()
    confirmed(page)
    text = flash(page)
    assert text.startswith("Heal gaps: 1 created."), text
    periods = sum(g.periods for g in ranges)
    assert f"({periods} in {len(ranges)} range(s))" in text  # the first range's backfill now, the others queued
    backfills = airflow_site.api("GET", "/api/v2/backfills", params={"dag_id": f"chart_sync__{US_WEEKLY}"}).json()
    assert [b["from_date"][:10] for b in backfills["backfills"]] == [str(ranges[0].start)]
    page.locator("tr", has_text=US_WEEKLY).get_by_role("button", name="Heal").click()
    confirmed(page)
    assert flash(page).startswith("Heal gaps: 1 already-running.")
    # a manual run of the chart still queued (no scheduler here: the charts page's bulk trigger made one) is
    # returned, not doubled; without one, a run is made
    page.locator("tr", has_text=GLOBAL_DAILY).get_by_role("button", name="Trigger").click()
    confirmed(page)
    assert flash(page).startswith(("Trigger manual sync: 1 done.", "Trigger manual sync: 1 unchanged.")), flash(page)
    page.locator("tr", has_text=GLOBAL_DAILY).get_by_role("button", name="Trigger").click()
    confirmed(page)
    assert flash(page).startswith("Trigger manual sync: 1 unchanged.") and "is already queued" in flash(page)
    runs = airflow_site.api("GET", f"/api/v2/dags/chart_sync__{GLOBAL_DAILY}/dagRuns").json()["dag_runs"]
    assert len([r for r in runs if r["run_type"] == "manual" and r["state"] == "queued"]) == 1
    session.screenshot("schedules-after-actions")


# -- schedule detail -------------------------------------------------------------------------------------------
def test_periods_ahead_of_a_running_catchup_wait_for_it_and_are_no_gaps(airflow_site, new_session):
    """Mid-catchup (Airflow's next run of the chart is 5 days back): the strip marks the missing periods from
    there on as waiting for the catchup, the gap table and its backfill commands stop before it, and the page
    says what the catchup creates in turn."""
    from sqlalchemy import create_engine, text

    dag_id, front = f"chart_sync__{DEEZER_FR}", TODAY - timedelta(days=5)
    metadata = create_engine(airflow_site.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    with metadata.begin() as conn:  # where the scheduler's catchup stands (no dag-processor runs to recompute it)
        conn.execute(text("UPDATE dag SET next_dagrun = :front WHERE dag_id = :dag_id"),
                     {"front": datetime.combine(front, datetime.min.time(), UTC), "dag_id": dag_id})
    try:
        report = gaps.gap_report(airflow_site.engine, airflow_site.chart_id(DEEZER_FR))
        (waiting,) = report.waiting
        assert waiting.front == front and report.gaps and report.gaps[-1].end < front
        session = new_session("admin", landing=f"{UI}/schedules/{airflow_site.schedule_id(DEEZER_FR)}")
        page = session.page
        cells = dict(tuple(c) for c in page.eval_on_selector_all(
            ".strip .cell", "cells => cells.map(c => [c.dataset.period, c.dataset.status])"))
        config = schedules.ScheduleConfig.from_row(airflow_site.schedule(DEEZER_FR))
        expected = [str(c.period) for c in coverage.coverage_strip(airflow_site.engine, config)
                    if c.status == "waiting-for-catchup"]
        shown = [p for p, status in cells.items() if status == "waiting-for-catchup"]
        assert shown == expected and shown[0] == str(front) and str(TODAY - timedelta(days=1)) in shown
        assert all(status != "missing" for p, status in cells.items() if p >= str(front))
        assert page.locator("[data-count=waiting-for-catchup]").inner_text() == str(len(shown))
        assert page.locator("tr.gap").count() == len(report.gaps)
        assert f"--to-date {report.gaps[-1].end} " in page.locator("tr.gap").last.inner_text()
        wait = page.locator(".catchup-wait")
        assert wait.get_attribute("data-waiting") == str(waiting.periods) and "wait for the catchup" in wait.inner_text()
        session.screenshot("schedule-waiting-for-catchup")
    finally:
        with metadata.begin() as conn:
            conn.execute(text("UPDATE dag SET next_dagrun = :now WHERE dag_id = :dag_id"),
                         {"now": datetime.now(UTC), "dag_id": dag_id})
        metadata.dispose()


def test_schedule_detail_history_gaps_and_coverage_strip_match_the_db(airflow_site, new_session):
    sid = airflow_site.schedule_id(GLOBAL_DAILY)
    session = new_session("admin", landing=f"{UI}/schedules/{sid}")
    page = session.page
    engine = airflow_site.engine
    config = schedules.ScheduleConfig.from_row(airflow_site.schedule(GLOBAL_DAILY))
    expected = coverage.coverage_strip(engine, config)
    shown = [tuple(c) for c in page.eval_on_selector_all(
        ".strip .cell", "cells => cells.map(c => [c.dataset.period, c.dataset.status])")]
    assert shown == [(str(c.period), c.status) for c in expected]
    with engine.connect() as conn:
        stored = {str(p) for p in conn.execute(select(chart_ranking.c.period).where(
            chart_ranking.c.chart_id == config.chart_id)).scalars()}
    assert {p for p, status in shown if status == "synced"} == stored == {str(d) for d in SYNCED_DAYS}
    assert dict(shown)[str(FAILED_DAY)] == "failed"
    assert page.locator("[data-count=synced]").inner_text() == str(len(SYNCED_DAYS))
    assert 360 <= len(shown) <= 367  # one cell per day of the past year
    # gap ranges, live
    ranges = gaps.list_gaps(engine, config.chart_id)
    rows = page.locator("tr.gap")
    assert rows.count() == len(ranges)
    assert f"--from-date {ranges[0].start} --to-date {ranges[0].end}" in rows.first.inner_text()
    # execution history by period: counts, durations, errors
    e = chart_sync_execution.c
    groups = select(func.count(e.period.distinct()) + func.count(case((e.period.is_(None), e.run_id)).distinct()))
    with engine.connect() as conn:  # a try without a period is a row of its own run
        shown_periods = conn.execute(groups.where(e.chart_id == config.chart_id)).scalar()
    assert page.locator("#history-h").inner_text().endswith(f"{shown_periods} periods")
    failed = execution_row(page, FAILED_DAY)
    assert "failed" in failed.inner_text()
    failed.locator("td.error summary").click()
    assert "HTTP 503 from /api/v2.14/chart/song/" in failed.locator("td.error pre").inner_text()
    first_synced = execution_row(page, SYNCED_DAYS[-1])
    assert "1 / 0" in first_synced.inner_text() and "200" in first_synced.inner_text()
    assert page.get_by_role("link", name=f"chart_sync__{GLOBAL_DAILY}").get_attribute("href") == \
        f"/dags/chart_sync__{GLOBAL_DAILY}"
    # data quality: the summary, the flagged rankings newest first with their measures, a filter by flag
    flagged = sorted((d for d, f in QUALITY.items() if f), reverse=True)
    assert page.locator("[data-quality-flagged]").inner_text() == str(len(flagged))
    assert page.locator(".quality-summary").get_attribute("data-checked") == str(len(SYNCED_DAYS) - 1)
    rows = page.locator("tr.flagged-ranking")
    assert [rows.nth(i).get_attribute("data-period") for i in range(rows.count())] == [str(d) for d in flagged]
    assert "40% new entries, usually 5%" in rows.first.inner_text()
    assert "12 of 190 previous positions contradict the previous period" in rows.nth(1).inner_text()
    assert page.locator("[data-flag-count=previous_mismatch] strong").inner_text() == "1"
    assert page.locator("#quality svg.plot rect title").count() > 0  # rankings by month: clean, flagged, not checked
    session.screenshot("schedule-detail")
    page.locator("[data-flag-count=previous_mismatch]").click()
    page.wait_for_url("**flag=previous_mismatch**")
    assert page.locator("tr.flagged-ranking").count() == 1
    page.locator("tr.flagged-ranking th a").click()  # to that ranking's page
    assert page.locator("section[data-quality]").get_attribute("data-quality") == "flagged"
    assert "missing_streams 30% of entries without streams" in page.locator(".flag-notes").inner_text()
    page.goto(f"{UI}/schedules/{sid}")
    follow(page, page.get_by_role("link", name="Next ›"))
    assert "page=2" in page.url and page.locator("tr.execution").count() > 0


def test_schedule_configuration_is_editable_and_validated(airflow_site, new_session):
    sid = airflow_site.schedule_id(GB_DAILY)
    session = new_session("admin", landing=f"{UI}/schedules/{sid}")
    page = session.page
    page.get_by_label("Deadline").fill("30")
    page.get_by_label("Fetch track metadata").uncheck()
    page.get_by_role("button", name="Save configuration").click()
    assert flash(page).startswith("Configuration saved.")
    row = airflow_site.schedule(GB_DAILY)
    assert row.deadline_hours == 30 and not row.fetch_track_metadata and not row.is_active
    page.get_by_label("Sync frequency").select_option("cron")
    page.get_by_role("button", name="Save configuration").click()
    assert page.locator("#config-error").inner_text() == "Nothing saved: Cron expression: required for the cron frequency"
    assert page.get_by_label("Sync frequency").input_value() == "cron"  # what was typed stays
    assert airflow_site.schedule(GB_DAILY).sync_frequency == "daily"
    page.get_by_label("Sync frequency").select_option("custom")
    page.get_by_label("Interval (hours)").fill("12")
    page.get_by_role("button", name="Save configuration").click()
    assert flash(page).startswith("Configuration saved.")
    row = airflow_site.schedule(GB_DAILY)
    assert (row.sync_frequency, row.custom_interval_hours) == ("custom", 12)
    with airflow_site.engine.connect() as conn:
        from chartsync.store.tables import chart_sync_audit

        actors = set(conn.execute(select(chart_sync_audit.c.actor).where(
            chart_sync_audit.c.entity_id == sid, chart_sync_audit.c.action == "update")).scalars())
    assert actors == {"admin"}


# -- ranking -------------------------------------------------------------------------------------------------------
def test_ranking_page_sorts_filters_searches_pages_and_navigates(airflow_site, new_session):
    chart_id = airflow_site.chart_id(GLOBAL_DAILY)
    session = new_session("admin", landing=f"{UI}/charts/{chart_id}/ranking")
    page = session.page
    newest = max(SYNCED_DAYS)
    assert page.locator("h1").inner_text().endswith(str(newest))
    rows = page.locator("table.ranking tbody tr")
    assert rows.count() == 100
    assert rows.first.locator("td").first.inner_text() == "1"
    with airflow_site.engine.connect() as conn:
        ranking_id = conn.execute(select(chart_ranking.c.id).where(
            chart_ranking.c.chart_id == chart_id, chart_ranking.c.period == newest)).scalar()
        trends = dict(conn.execute(select(chart_ranking_entry.c.trend, func.count()).where(
            chart_ranking_entry.c.ranking_id == ranking_id).group_by(chart_ranking_entry.c.trend)).all())
        top = conn.execute(select(track.c.name, chart_ranking_entry.c.streams).join(
            track, track.c.id == chart_ranking_entry.c.track_id).where(
            chart_ranking_entry.c.ranking_id == ranking_id).order_by(chart_ranking_entry.c.position)).all()
    for trend in ("new", "up", "down", "same", "re-entry"):
        assert page.locator(f"[data-trend-count='{trend}'] .value").inner_text() == str(trends.get(trend, 0))
    assert page.locator("form[method=post]").count() == 0  # read-only
    quality = page.locator("section[data-quality]")
    assert quality.get_attribute("data-quality") == "flagged" and "churn" in quality.locator("h2 + ul").inner_text()
    quality.locator("summary").click()
    assert quality.locator("dd.raised").inner_text() == "40% of entries, usually 5% churn"
    session.screenshot("ranking")
    follow(page, page.get_by_role("link", name="Next ›"))
    assert page.locator("table.ranking tbody tr").first.locator("td").first.inner_text() == "101"
    # sort by streams, most first
    page.goto(f"{UI}/charts/{chart_id}/ranking?period={newest}&sort=streams&desc=1")
    streams = [int(t.replace(",", "")) for t in page.locator("table.ranking tbody tr td:nth-child(5)").all_inner_texts()]
    assert streams == sorted(streams, reverse=True) and streams[0] == max(s for _, s in top)
    # filter by trend via its card, then search
    follow(page, page.locator("[data-trend-count='up']"))
    assert all(t.startswith("▲") for t in page.locator("table.ranking .trend").all_inner_texts())
    assert page.locator("table.ranking tbody tr").count() == min(100, trends["up"])
    page.goto(f"{UI}/charts/{chart_id}/ranking?period={newest}")
    page.get_by_label("Search").fill(top[0].name)
    follow(page, page.get_by_role("button", name="Filter"))
    assert top[0].name in page.locator("table.ranking tbody tr").first.inner_text()
    # previous / next period
    page.goto(f"{UI}/charts/{chart_id}/ranking?period={newest}")
    follow(page, page.get_by_role("link", name=f"‹ {newest - timedelta(days=1)}"))
    assert page.locator("h1").inner_text().endswith(str(newest - timedelta(days=1)))
    assert page.get_by_role("link", name=f"{newest} ›").count() == 1
    assert page.locator("section[data-quality]").get_attribute("data-quality") == "clean"
    page.goto(f"{UI}/charts/{chart_id}/ranking?period={min(SYNCED_DAYS)}")  # stored before the checks
    assert page.locator("section[data-quality]").get_attribute("data-quality") == "not-checked"
    assert requests.get(f"{airflow_site.api_url}{UI}/charts/{chart_id}/ranking", allow_redirects=False,
                        timeout=30).status_code == 303


# -- stats ------------------------------------------------------------------------------------------------------------
def test_stats_page_plots_render_without_network(airflow_site, new_session):
    session = new_session("admin", landing=f"{UI}/stats")
    page = session.page
    external = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(airflow_site.api_url) else None)
    page.reload()
    plots = page.locator("svg.plot")
    assert plots.count() == 10  # coverage, outcome, freshness and quality by period; six by the day the syncs ran
    assert page.locator(".period-plots svg.plot rect title").count() > 0  # columns by period
    assert page.locator(".quality-plots svg.plot rect title").count() > 0
    assert page.locator("svg.plot polyline").count() >= 6  # freshness, success rate, duration, three outcomes
    assert external == []
    engine = airflow_site.engine
    day = TODAY - timedelta(days=5)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).where(
            func.date(chart_sync_execution.c.started_at) == str(day))).scalar()
    page.locator("summary", has_text="The numbers per day").click()
    cells = page.locator(f"tr[data-day='{day}'] td").all_inner_texts()
    assert cells[1] == str(n)
    assert "Deezer Top 100 France Daily" in page.locator("svg.plot").nth(9).inner_html()  # slowest charts
    q = chart_ranking_quality.c
    with engine.connect() as conn:  # the rankings of the window's periods flagged, of every chart
        flagged = conn.execute(select(func.count()).where(q.flagged.is_(True), q.period > TODAY - timedelta(days=30),
                                                          q.period <= TODAY)).scalar()
    assert flagged >= len([f for f in QUALITY.values() if f])
    assert page.locator(".quality-plots [data-quality-flagged]").get_attribute("data-quality-flagged") == str(flagged)
    # the quota card: what the chart DB recorded, in words as well as figures
    report = budget.report(engine)
    card = page.get_by_role("region", name="Soundcharts API quota")
    assert card.locator("[data-quota-remaining]").get_attribute("data-quota-remaining") == str(report.summary.remaining)
    assert report.summary.remaining == QUOTA_SEEN and report.charts[0].slug == GLOBAL_DAILY
    assert card.locator("[data-quota-spent-30d]").inner_text() == f"{report.summary.spent_30d:,}"
    assert card.locator("[data-quota-spent-24h]").get_attribute("data-quota-spent-24h") == str(report.summary.spent_24h)
    assert card.locator(".quota-state").inner_text().lower().startswith(report.state.lower())
    assert "rate-bad" not in (card.locator(".quota-state").get_attribute("class") or "")  # above the reserve
    runs_out = card.locator("[data-quota-runs-out]").get_attribute("data-quota-runs-out")
    assert runs_out == (report.summary.runs_out_on.isoformat() if report.summary.runs_out_on else "")
    top = card.get_by_role("table").locator("tbody tr")
    assert top.first.get_attribute("data-quota-chart") == report.charts[0].slug
    assert "seen" in card.locator("time").locator("..").inner_text()
    session.screenshot("stats")
    card.screenshot(path=str(Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
                             / "stats-quota-card-1280.png"))
    follow(page, page.get_by_role("link", name="7 days"))
    assert page.locator("tr[data-day]").count() == 7


# -- alerts and the song page ----------------------------------------------------------------------------------
def test_alerts_feed_with_filters(airflow_site, new_session):
    session = new_session("admin", landing=f"{UI}/alerts")
    page = session.page
    assert page.locator("li.alert").count() == 3
    session.screenshot("alerts")
    page.get_by_label("Kind").select_option("failure")
    follow(page, page.get_by_role("button", name="Filter"))
    assert "kind=failure" in page.url and page.locator("li.alert").count() == 1
    assert "Spotify Top 200 Global Daily" in page.locator("li.alert").inner_text()
    page.goto(f"{UI}/alerts?chart={DE_WEEKLY}")
    assert page.locator("li.alert .badge").all_inner_texts() == ["Schedule overdue"]
    page.goto(f"{UI}/alerts?chart=no-such-chart")
    assert "No chart with the slug" in flash(page)


def test_song_page_refreshes_stale_audience_then_shows_it(airflow_site, new_session):
    chart_id = airflow_site.chart_id(GLOBAL_DAILY)
    session = new_session("admin", landing=f"{UI}/charts/{chart_id}/ranking")
    page = session.page
    link = page.locator("table.ranking tbody tr").nth(2).locator("a")
    name = link.inner_text()
    link.click()
    page.wait_for_url(re.compile(r"/songs/"))
    uuid = page.url.rsplit("/", 1)[1]
    assert page.locator("h1").inner_text().startswith(name)
    assert page.locator("#refreshing").inner_text().startswith("Refreshing")
    runs = airflow_site.api("GET", f"/api/v2/dags/{AUDIENCE_DAG_ID}/dagRuns").json()["dag_runs"]
    mine = [r for r in runs if uuid in r["dag_run_id"]]
    assert len(mine) == 1 and mine[0]["state"] == "queued"
    page.reload()  # still refreshing: no second run
    assert page.locator("#refreshing").count() == 1
    assert len([r for r in airflow_site.api("GET", f"/api/v2/dags/{AUDIENCE_DAG_ID}/dagRuns")
                .json()["dag_runs"] if uuid in r["dag_run_id"]]) == 1
    session.screenshot("song-refreshing")
    # the run does its work (the DAG task's own function) and finishes
    with mock.patch.dict(os.environ, {"AIRFLOW_CONN_SOUNDCHARTS_DEFAULT": airflow_site.env["AIRFLOW_CONN_SOUNDCHARTS_DEFAULT"]}):
        done = audience.refresh_song(airflow_site.engine, SoundchartsClient(max_attempts=2), uuid)
    r = airflow_site.api("PATCH", f"/api/v2/dags/{AUDIENCE_DAG_ID}/dagRuns/{mine[0]['dag_run_id']}",
                         json={"state": "success"})
    assert r.status_code == 200, r.text
    page.reload()
    assert page.locator("#refreshing").count() == 0
    assert page.locator("figure.audience svg polyline").count() == len([p for p, n in done.points.items() if n])
    assert page.locator("table tbody tr").count() == len([p for p, n in done.points.items() if n])
    session.screenshot("song")


# -- viewer, forged and cross-site POSTs ------------------------------------------------------------------------------
def test_viewer_sees_no_write_controls_and_cannot_post(airflow_site, new_session):
    session = new_session("viewer")
    page = session.page
    assert "read-only" in page.locator(".who").inner_text()
    assert page.locator("form[method=post] button, input[name=chart_id], fieldset.bulk").count() == 0
    session.screenshot("charts-viewer")
    sid = airflow_site.schedule_id(GLOBAL_DAILY)
    for path in (f"{UI}/schedules", f"{UI}/schedules/{sid}", f"{UI}/stats", f"{UI}/alerts"):
        session.goto(path)
        assert page.locator("form[method=post], button[name=single], button[name=action]").count() == 0, path
    session.goto(f"{UI}/schedules/{sid}")
    assert page.locator("dl.config-list").count() == 1
    session.screenshot("schedule-detail-viewer")
    before = airflow_site.schedule(GLOBAL_DAILY)
    # a forged POST with the viewer's own session: refused, nothing changes
    for path, data in ((f"{UI}/charts/bulk", {"action": "remove", "chart_id": str(before.chart_id),
                                                "confirmed": "1"}),
                       (f"{UI}/schedules/{sid}/action", {"action": "deactivate", "confirmed": "1"}),
                       (f"{UI}/schedules/{sid}/config", {"sync_frequency": "weekly"})):
        r = page.request.post(path, form=data, headers={"Origin": airflow_site.api_url})
        assert r.status == 403 and "may read chart-sync but not change it" in r.text(), (path, r.status)
    after = airflow_site.schedule(GLOBAL_DAILY)
    assert (after.is_active, after.sync_frequency) == (before.is_active, before.sync_frequency)


class _EvilSite:
    """A page on another origin (same host, another port: the same *site* for SameSite cookies)
    that submits a form to the chart-sync pages as soon as it loads."""

    def __init__(self, target: str, fields: dict[str, str]) -> None:
        inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
        body = (f'<html><body><form id="f" method="post" action="{target}">{inputs}</form>'
                '<script>document.getElementById("f").submit()</script></body></html>').encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_cross_site_and_tokenless_posts_are_refused(airflow_site, new_session):
    session = new_session("admin")
    page = session.page
    sid = airflow_site.schedule_id(GLOBAL_DAILY)
    assert airflow_site.schedule(GLOBAL_DAILY).is_active
    evil = _EvilSite(f"{airflow_site.api_url}{UI}/schedules/{sid}/action",
                     {"action": "deactivate", "confirmed": "1", "csrf_token": "0" * 64})
    try:
        with page.expect_response(re.compile(r"/schedules/\d+/action")) as response:
            page.goto(evil.url)
        assert response.value.status == 403
        page.wait_for_load_state()
        assert "refused a form sent from another site" in page.locator("body").inner_text()
        session.screenshot("forbidden")
    finally:
        evil.close()
    assert airflow_site.schedule(GLOBAL_DAILY).is_active
    # same origin but without (or with a wrong) token: refused too
    for token in (None, "0" * 64):
        data = {"action": "deactivate", "confirmed": "1", **({"csrf_token": token} if token else {})}
        r = page.request.post(f"{UI}/schedules/{sid}/action", form=data, headers={"Origin": airflow_site.api_url})
        assert r.status == 403 and "security token" in r.text()
    assert airflow_site.schedule(GLOBAL_DAILY).is_active
    # the page's own token works (the same POST the form makes)
    session.goto(f"{UI}/schedules/{sid}")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    r = page.request.post(f"{UI}/schedules/{sid}/action", headers={"Origin": airflow_site.api_url},
                          form={"action": "deactivate", "confirmed": "1", "csrf_token": token}, max_redirects=0)
    assert r.status == 303
    assert not airflow_site.schedule(GLOBAL_DAILY).is_active
    session.goto(f"{UI}/schedules/{sid}")
    assert flash(page).startswith("Deactivate: 1 done.")
