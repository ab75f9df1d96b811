"""The admin pages where ops use them: inside the Airflow UI.

Airflow 3.3.2 embeds a plugin's external view in an iframe sandboxed with
``allow-scripts allow-same-origin allow-forms allow-downloads``: no modals (``confirm()`` returns false at
once) and no top navigation. Each write action is driven through ``/plugin/chart-sync-<page>``, logged in
through the simple auth manager's real login form, inside the frame; its effect is asserted in the chart DB
and through Airflow's REST API. Then the tables at 1280x800 inside the frame, the "Chart sync" tabs of a
chart DAG and of one of its runs (and of a DAG that is not a chart DAG), the song page's side-effect-free
GET, the audit-log page and the ranking's links. The same seeded site as test_pages.py (its module fixture,
started once for this module). Screenshots go to test-artifacts/screenshots/airflow-ui-*.png.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from sqlalchemy import select

from chartsync.core.outcomes import RunRef
from chartsync.services import gaps, quality
from chartsync.services.sync import sync_period
from chartsync.settings import AUDIENCE_DAG_ID
from chartsync.soundcharts.client import SoundchartsClient
from chartsync.store.tables import chart_sync_audit
from e2e.conftest import SCREENSHOTS
from e2e import test_pages
from e2e.test_pages import (
    DE_DAILY,
    FR_DAILY,
    GB_DAILY,
    GLOBAL_DAILY,
    UI,
    US_DAILY,
    US_WEEKLY,
    select_rows,
)

pytestmark = pytest.mark.integration
airflow_site = test_pages.airflow_site  # the same seeded site, started once for this module
SCREEN = {"width": 1280, "height": 800}


# -- helpers -------------------------------------------------------------------------------------------
def embedded(new_session, page: str):
    """A session on the Airflow UI's page of the external view ``chart-sync-<page>``, and its frame."""
    session = new_session("admin", landing=f"/plugin/chart-sync-{page}")
    session.page.set_viewport_size(SCREEN)
    modals: list[str] = []
    session.page.on("dialog", lambda d: modals.append(d.message))  # the sandbox would swallow them: none allowed
    session.modals = modals
    frame = session.page.frame_locator("iframe")
    frame.locator("h1").first.wait_for(timeout=60_000)
    return session, frame


def confirm(frame) -> str:
    """The page's own confirmation (a <dialog>): its question, then Confirm."""
    dialog = frame.locator("dialog#confirm-dialog")
    dialog.wait_for(state="visible")
    text = dialog.locator("p").inner_text()
    dialog.get_by_role("button", name="Confirm").click()
    return text


def result(frame, start: str) -> str:
    """The result message that starts with ``start``, once the page the action answered with is there."""
    message = frame.locator(".flash", has=frame.locator("strong", has_text=re.compile("^" + re.escape(start))))
    message.first.wait_for(timeout=30_000)
    return message.first.inner_text()


def result_link(frame, name) -> str:
    return frame.locator(".flash .result-links a", has_text=name).first.get_attribute("href")


def dag(site, dag_id: str) -> dict:
    return site.api("GET", f"/api/v2/dags/{dag_id}").json()


# -- every write action, inside the Airflow UI ----------------------------------------------------------------
def test_write_actions_work_inside_the_airflow_ui(airflow_site, new_session):
    site = airflow_site
    session, frame = embedded(new_session, "charts")
    page = session.page
    # add to the sync schedule: confirmed in the page, the result links to the new DAG
    select_rows(frame, [FR_DAILY, DE_DAILY])
    frame.get_by_label("Action").select_option("add")
    frame.get_by_label("Frequency (add)").select_option("daily")
    frame.get_by_label("a year of history").uncheck()
    frame.get_by_role("button", name="Apply").click()
    assert confirm(frame) == "Add to sync schedule: 2 charts. Continue?"
    result(frame, "Add to sync schedule: 2 done.")
    assert result_link(frame, f"DAG chart_sync__{FR_DAILY}") == f"/dags/chart_sync__{FR_DAILY}"
    assert site.schedule(FR_DAILY).sync_frequency == "daily" and not site.schedule(FR_DAILY).sync_historical_data
    # a bad setting: the field's label, and the form keeps what was typed and which charts were ticked
    select_rows(frame, [US_DAILY])
    frame.get_by_label("Action").select_option("add")
    frame.get_by_label("Frequency (add)").select_option("cron")
    frame.get_by_label("Cron expression, cron").fill("every morning")
    frame.get_by_label("sync immediately").uncheck()
    frame.get_by_role("button", name="Apply").click()
    confirm(frame)  # asked in the page first, then the server's validator answers
    assert "Cron expression: 'every morning' is not a valid cron expression" in \
        frame.locator(".flash-error").inner_text()
    assert frame.get_by_label("Cron expression, cron").input_value() == "every morning"
    assert frame.get_by_label("Frequency (add)").input_value() == "cron"
    assert not frame.get_by_label("sync immediately").is_checked()
    assert frame.locator("tr", has_text=US_DAILY).locator("input[name=chart_id]").is_checked()
    assert site.schedule(US_DAILY) is None
    # trigger: the result links to the run, and the link opens it in the Airflow UI (not in the frame)
    frame.locator("tr", has_text=US_DAILY).locator("input[name=chart_id]").uncheck()
    select_rows(frame, [GLOBAL_DAILY])
    frame.get_by_label("Action").select_option("trigger")
    frame.get_by_role("button", name="Apply").click()
    confirm(frame)
    result(frame, "Trigger manual sync: 1 done.")
    href = result_link(frame, "run manual__chartsync__")
    run_id = re.search(r"/runs/(.+)$", href).group(1)
    run = site.api("GET", f"/api/v2/dags/chart_sync__{GLOBAL_DAILY}/dagRuns/{run_id}")
    assert run.status_code == 200 and run.json()["state"] == "queued"
    frame.locator(".flash .result-links a", has_text="run manual__chartsync__").click()
    page.wait_for_url(re.compile(rf"/dags/chart_sync__{GLOBAL_DAILY}/runs/"))
    # schedules: a row's deactivate / activate, bulk deactivate, heal (links to the backfill), all confirmed in the page
    session.goto("/plugin/chart-sync-schedules")
    frame = page.frame_locator("iframe")
    frame.locator("tr", has_text=US_WEEKLY).get_by_role("button", name="Deactivate").click()
    assert confirm(frame).startswith("Deactivate Spotify Top 200 United States Weekly?")
    result(frame, "Deactivate: 1 done.")
    assert result_link(frame, f"DAG chart_sync__{US_WEEKLY}") == f"/dags/chart_sync__{US_WEEKLY}"
    assert not site.schedule(US_WEEKLY).is_active and dag(site, f"chart_sync__{US_WEEKLY}")["is_paused"] is True
    frame.locator("tr", has_text=US_WEEKLY).get_by_role("button", name="Activate").click()
    confirm(frame)
    result(frame, "Activate: 1 done.")
    assert site.schedule(US_WEEKLY).is_active and dag(site, f"chart_sync__{US_WEEKLY}")["is_paused"] is False
    select_rows(frame, [GB_DAILY, FR_DAILY], "schedule_id")
    frame.get_by_label("Action").select_option("deactivate")
    frame.get_by_role("button", name="Apply").click()
    assert confirm(frame) == "Deactivate: 2 schedules. Continue?"
    result(frame, "Deactivate: 1 done, 1 unchanged.")
    assert not site.schedule(FR_DAILY).is_active
    ranges = gaps.list_gaps(site.engine, site.chart_id(US_WEEKLY))
    frame.locator("tr", has_text=US_WEEKLY).get_by_role("button", name="Heal").click()
    confirm(frame)
    result(frame, "Heal gaps: 1 created.")
    backfills = site.api("GET", "/api/v2/backfills", params={"dag_id": f"chart_sync__{US_WEEKLY}"}).json()["backfills"]
    assert [b["from_date"][:10] for b in backfills] == [str(ranges[0].start)]
    assert result_link(frame, f"backfill {backfills[0]['id']}") == f"/dags/chart_sync__{US_WEEKLY}/backfills"
    frame.locator(".flash .result-links a", has_text="backfill").click()
    page.wait_for_url(re.compile(rf"/dags/chart_sync__{US_WEEKLY}/backfills"))
    # configuration: saved with a link to the DAG; an invalid value keeps what was typed
    # (the UI keeps the frame's page in its own URL: /plugin/<route>/<path of the page>, a link to share)
    session.goto(f"/plugin/chart-sync-schedules{UI}/schedules/{site.schedule_id(GB_DAILY)}")
    frame = page.frame_locator("iframe")
    frame.locator("#config-h").wait_for(timeout=60_000)
    frame.get_by_label("Deadline").fill("30")
    frame.get_by_role("button", name="Save configuration").click()
    result(frame, "Configuration saved.")
    assert site.schedule(GB_DAILY).deadline_hours == 30
    assert result_link(frame, "DAG") == f"/dags/chart_sync__{GB_DAILY}"
    frame.get_by_label("Sync frequency").select_option("custom")  # without its interval
    frame.get_by_label("Deadline").fill("31")
    frame.get_by_role("button", name="Save configuration").click()
    assert frame.locator("#config-error").inner_text() == \
        "Nothing saved: Interval (hours): required for the custom frequency"
    assert frame.get_by_label("Deadline").input_value() == "31"
    assert frame.get_by_label("Sync frequency").input_value() == "custom"
    assert (site.schedule(GB_DAILY).sync_frequency, site.schedule(GB_DAILY).deadline_hours) == ("daily", 30)
    assert session.modals == []


# -- every table fits the frame at 1280x800 ---------------------------------------------------------------------
def test_every_table_fits_inside_the_airflow_ui_at_1280(airflow_site, new_session):
    session, _ = embedded(new_session, "schedules")
    page = session.page
    sid = airflow_site.schedule_id(GLOBAL_DAILY)
    for name, route in (("charts", "chart-sync-charts"), ("schedules", "chart-sync-schedules"),
                        ("schedule-detail", "chart-sync-schedules"), ("stats", "chart-sync-stats"),
                        ("alerts", "chart-sync-alerts"), ("audit", "chart-sync-audit")):
        session.goto(f"/plugin/{route}" + (f"{UI}/schedules/{sid}" if name == "schedule-detail" else ""))
        page.frame_locator("iframe").locator("h1").first.wait_for()
        frame = page.locator("iframe").element_handle().content_frame()
        page.wait_for_timeout(300)
        overflow = frame.evaluate("""() => {
            const out = [];
            const doc = document.documentElement;
            if (doc.scrollWidth > doc.clientWidth) out.push(`page ${doc.scrollWidth} > ${doc.clientWidth}`);
            document.querySelectorAll('.table-wrap').forEach((w, i) => {
                if (w.scrollWidth > w.clientWidth + 1) out.push(`table ${i} ${w.scrollWidth} > ${w.clientWidth}`);
            });
            document.querySelectorAll('table th:last-child, table td:last-child').forEach(c => {
                const r = c.getBoundingClientRect();
                if (r.width && r.right > doc.clientWidth + 1) out.push(`cell ${c.textContent.trim().slice(0, 20)} at ${r.right}`);
            });
            return out;
        }""")
        assert overflow == [], (name, overflow)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"airflow-ui-{name}-1280x800.png"))


# -- the Chart sync tabs of a DAG and of a run ----------------------------------------------------------------
def test_chart_sync_tabs_on_dag_and_run_pages(airflow_site, new_session):
    site = airflow_site
    dag_id = f"chart_sync__{GLOBAL_DAILY}"
    session = new_session("admin", landing=f"/dags/{dag_id}")
    page = session.page
    page.set_viewport_size(SCREEN)
    page.get_by_role("tab", name="Chart sync").or_(page.get_by_role("link", name="Chart sync")).first.click()
    page.wait_for_url(f"**/dags/{dag_id}/plugin/chart-sync-dag")
    frame = page.frame_locator("iframe")
    assert frame.locator("h1").first.inner_text(timeout=60_000).startswith("Spotify Top 200 Global Daily")
    assert 360 <= frame.locator(".strip .cell").count() <= 367
    assert frame.locator("tr.gap").count() == len(gaps.list_gaps(site.engine, site.chart_id(GLOBAL_DAILY)))
    assert frame.locator("#history tr.execution").count() > 0
    assert frame.get_by_role("button", name="Heal gaps").count() == 1
    # the chart's data quality, as the schedule page has it; its flag filters stay in the tab
    summary = quality.schedule_quality(site.engine, site.schedule_id(GLOBAL_DAILY)).summary
    shown = frame.locator("#quality .quality-summary")
    assert (shown.get_attribute("data-checked"), shown.get_attribute("data-flagged")) == (
        str(summary.rankings_checked), str(summary.rankings_flagged))
    assert f"/ui/dags/{dag_id}?flag=" in frame.locator("#quality a.flag-filter").first.get_attribute("href")
    page.wait_for_timeout(300)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "airflow-ui-dag-tab-1280x800.png"))
    frame.locator("#quality").scroll_into_view_if_needed()
    inner = page.locator("iframe").element_handle().content_frame()
    assert inner.evaluate("""() => [document.documentElement, document.querySelector('#quality')].every(
        e => e.scrollWidth <= e.clientWidth + 1)"""), "the quality section overflows the tab"
    page.screenshot(path=str(SCREENSHOTS / "airflow-ui-dag-tab-quality-1280x800.png"))
    # a run that synced one period: its tab names that period (not the run id's date)
    logical = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=30)
    created = site.api("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                       json={"dag_run_id": "manual__tab-test", "logical_date": logical.isoformat()})
    assert created.status_code in (200, 201), created.text
    period = logical.date() - timedelta(days=1)
    with mock.patch.dict(os.environ, {"AIRFLOW_CONN_SOUNDCHARTS_DEFAULT": site.env["AIRFLOW_CONN_SOUNDCHARTS_DEFAULT"]}):
        sync_period(site.engine, SoundchartsClient(max_attempts=2),
                    RunRef(site.chart_id(GLOBAL_DAILY), dag_id, "manual__tab-test"), GLOBAL_DAILY, period)
    session.goto(f"/dags/{dag_id}/runs/manual__tab-test")
    page.get_by_role("tab", name="Chart sync").or_(page.get_by_role("link", name="Chart sync")).first.click()
    page.wait_for_url("**/runs/manual__tab-test/plugin/chart-sync-run")
    frame = page.frame_locator("iframe")
    assert frame.locator("#run-period").inner_text(timeout=60_000).startswith(f"Period {period}")
    assert frame.locator("tr.execution").count() == 1
    assert "success" in frame.locator("tr.execution").inner_text()
    # the quality of the ranking the run stored, as the ranking page shows it
    stored = quality.ranking_quality(site.engine, site.chart_id(GLOBAL_DAILY), period)
    assert stored.status in ("clean", "flagged")  # checked when the sync stored it
    assert frame.locator("section[data-quality]").get_attribute("data-quality") == stored.status
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / "airflow-ui-run-tab-1280x800.png"))
    # another DAG's tabs say plainly it is not a chart DAG
    session.goto(f"/dags/{AUDIENCE_DAG_ID}/plugin/chart-sync-dag")
    assert page.frame_locator("iframe").locator("#not-a-chart-dag h1").inner_text(timeout=60_000) == "Not a chart DAG"


# -- the song page, the audit log, the ranking's links --------------------------------------------------------
def test_song_get_has_no_side_effects_and_fetch_is_a_post(airflow_site, new_session):
    site = airflow_site

    def runs_of(uuid):
        runs = site.api("GET", f"/api/v2/dags/{AUDIENCE_DAG_ID}/dagRuns").json()["dag_runs"]
        return [r for r in runs if uuid in r["dag_run_id"]]

    chart_id = site.chart_id(GLOBAL_DAILY)
    plain = new_session("admin", javascript=False, landing=f"{UI}/charts/{chart_id}/ranking")
    href = plain.page.locator("table.ranking tbody tr").nth(5).locator("a").get_attribute("href")
    uuid = href.rsplit("/", 1)[1]
    plain.goto(href)
    plain.goto(href)
    assert runs_of(uuid) == []  # two GETs: no run
    assert plain.page.locator("#stale").count() == 1
    plain.page.get_by_role("button", name="Fetch now").click()  # the POST does it
    assert "Fetching the audience: run" in plain.page.locator(".flash").first.inner_text()
    assert len(runs_of(uuid)) == 1
    # with script, a stale song asks by itself, through the page's POST
    session = new_session("admin", landing=f"{UI}/charts/{chart_id}/ranking")
    href2 = session.page.locator("table.ranking tbody tr").nth(6).locator("a").get_attribute("href")
    uuid2 = href2.rsplit("/", 1)[1]
    with session.page.expect_request(lambda r: r.method == "POST" and r.url.endswith(f"/songs/{uuid2}/fetch")):
        session.goto(href2)
    session.page.locator("#refreshing").wait_for()
    assert len(runs_of(uuid2)) == 1


def test_audit_log_page_filters_by_actor_and_target(airflow_site, new_session):
    session = new_session("admin", landing=f"{UI}/audit")
    page = session.page
    with airflow_site.engine.connect() as conn:
        total = len(conn.execute(select(chart_sync_audit.c.id)).all())
        seeded = len(conn.execute(select(chart_sync_audit.c.id).where(chart_sync_audit.c.actor == "e2e-seed")).all())
    assert page.locator("h1").inner_text() == "Audit log"
    assert page.locator("nav.tabs a", has_text="Audit log").get_attribute("aria-current") == "page"
    assert page.locator("tr.audit-entry").count() == min(total, 50)
    page.get_by_label("Actor").fill("e2e-seed")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"actor=e2e-seed"))
    page.wait_for_load_state()
    assert page.locator("tr.audit-entry").count() == min(seeded, 50) > 0
    sid = airflow_site.schedule_id(GLOBAL_DAILY)
    page.goto(f"{UI}/audit?target=schedule&target_id={sid}")
    rows = page.locator("tr.audit-entry")
    assert rows.count() >= 1 and all(f"schedule {sid}" in t for t in rows.all_inner_texts())
    session.screenshot("audit")


def test_ranking_page_links_to_its_schedule_and_dag(airflow_site, new_session):
    chart_id = airflow_site.chart_id(GLOBAL_DAILY)
    session = new_session("admin", landing=f"{UI}/charts/{chart_id}/ranking")
    head = session.page.locator(".page-head")
    assert head.get_by_role("link", name="Schedule").get_attribute("href") == \
        f"{UI}/schedules/{airflow_site.schedule_id(GLOBAL_DAILY)}"
    assert head.get_by_role("link", name=f"DAG chart_sync__{GLOBAL_DAILY}").get_attribute("href") == \
        f"/dags/chart_sync__{GLOBAL_DAILY}"
