"""History by period in Chromium, inside the Airflow UI's sandboxed iframe:
from the schedule list's failed-period link to the filtered history, a period's tries unfolded (a
<details>: no script, no dialog), the run link, the catchup card and the plots by period.

Its own site: one api-server (the UI and the plugin) on a PostgreSQL chart DB whose history is written
directly: a daily chart that caught up a fortnight in the last hour. Screenshots go to
test-artifacts/screenshots/history-*.png.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import insert

from chartsync.store.tables import chart, chart_ranking, chart_sync_execution, chart_sync_schedule
from stacks import make_airflow_env, start_airflow, stop_airflow
from e2e.conftest import SCREENSHOTS

pytestmark = pytest.mark.integration

DAG = "chart_sync__e2e-history-daily"
SCREEN = {"width": 1280, "height": 800}


def first_period(now: datetime) -> date:
    """The history window: 14 periods due, the first one's .. yesterday."""
    return now.date() - timedelta(days=14)


def _seed(engine, now: datetime) -> None:
    """first .. first+9 stored (first+2 on its third try), first+10 failed twice."""
    first = first_period(now)

    def row(day: int, n: int, status: str, minutes_ago: int) -> dict:
        period = first + timedelta(days=day)
        started = now - timedelta(minutes=minutes_ago)
        return {"chart_id": 1, "dag_id": DAG, "run_id": f"scheduled__{period + timedelta(days=1)}T00:00:00+00:00",
                "try_number": n, "period": period, "status": status, "started_at": started,
                "completed_at": started + timedelta(seconds=3), "duration_seconds": 3.0,
                "rankings_created": int(status == "success"), "error": "HTTP 503" if status == "failed" else None}

    rows = [row(day, 1, "success", 40 - day) for day in range(10) if day != 2]
    rows += [row(2, 1, "failed", 39), row(2, 2, "failed", 38), row(2, 3, "success", 37)]
    rows += [row(10, 1, "failed", 9), row(10, 2, "failed", 8)]
    with engine.begin() as conn:
        conn.execute(insert(chart).values(id=1, slug="e2e-history-daily", name="E2E History Daily",
                                          platform="spotify", frequency="daily", created_at=now))
        conn.execute(insert(chart_sync_schedule).values(id=1, chart_id=1, is_active=True, sync_frequency="daily",
                                                        history_start=first, created_at=now, updated_at=now))
        conn.execute(insert(chart_sync_execution), rows)
        conn.execute(insert(chart_ranking), [
            {"chart_id": 1, "period": first + timedelta(days=d), "ranking_date": "x", "entry_count": 1,
             "fetched_at": now - timedelta(minutes=40 - d)} for d in range(10)])


@pytest.fixture(scope="module")
def airflow_site(tmp_path_factory, postgres, now):
    base = tmp_path_factory.mktemp("history-e2e")
    name = postgres.create_database("chart_history_e2e")
    af = make_airflow_env(base, "http://127.0.0.1:9", postgres.conn_json(name), postgres.url(name))
    _seed(af.engine(), now)
    services = start_airflow(af, components=("api-server",))
    yield services
    stop_airflow(services)


def test_failed_period_link_filtered_history_and_tries_unfold_inside_the_airflow_ui(new_session, now):
    first = first_period(now)
    session = new_session("admin", landing="/plugin/chart-sync-schedules")
    session.page.set_viewport_size(SCREEN)
    modals: list[str] = []
    session.page.on("dialog", lambda d: modals.append(d.message))
    frame = session.page.frame_locator("iframe")
    frame.locator("h1").first.wait_for(timeout=60_000)
    catchup = frame.locator(".catchup").first.inner_text()
    assert re.match(r"catchup 10/14 · 10/h · ETA in \d", catchup), catchup

    frame.get_by_role("link", name="1 failed period").click()
    frame.locator("#history-h").wait_for()
    rows = frame.locator("tr.execution")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-period") == str(first + timedelta(days=10))
    assert frame.get_by_label("Latest status").input_value() == "failed"
    folded = rows.first.locator("details.tries")
    assert not folded.locator("table").is_visible()
    folded.locator("summary").click()  # a <details>: opens in the sandboxed frame without script or dialog
    assert folded.locator("tbody tr").count() == 2 and folded.locator("table").is_visible()
    run = f"scheduled__{first + timedelta(days=11)}T00:00:00+00:00"
    href = rows.first.locator("a.run-link").get_attribute("href")
    assert href == f"/dags/{DAG}/runs/{run.replace(':', '%3A').replace('+', '%2B')}"

    frame.get_by_role("link", name="Clear").click()
    frame.locator("tr.execution").nth(10).wait_for()
    assert frame.locator("tr.execution").count() == 11  # 11 periods, 14 tries
    assert frame.locator(".card.stat.catchup").get_attribute("data-done") == "10"
    assert frame.locator("figure.plot-card svg rect title", has_text="stored").count() >= 1
    assert not frame.get_by_text("no period stored yet").count()
    assert modals == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    frame.locator("#history").screenshot(path=str(SCREENSHOTS / "history-by-period-1280.png"))
    frame.locator(".period-plots").screenshot(path=str(SCREENSHOTS / "history-plots-by-period-1280.png"))
    session.page.screenshot(path=str(SCREENSHOTS / "history-schedule-in-airflow-1280.png"), full_page=True)
