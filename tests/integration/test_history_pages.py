"""History by period, catchup progress and the plots by period, as a real
`airflow api-server` serves them: the schedule page, the schedule table, the stats page and the REST
API, on a PostgreSQL chart DB (the unit tests run the same queries on SQLite).

The chart's history is written straight into the chart DB: a daily chart caught up a fortnight within
the last hour, so every execution falls on one day, as after a real catchup.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
import requests
from sqlalchemy import insert

from chartsync.store.tables import chart, chart_ranking, chart_sync_execution, chart_sync_schedule
from stacks import make_airflow_env, start_airflow, stop_airflow

pytestmark = pytest.mark.integration

DAG = "chart_sync__history-daily"


def first_period(now: datetime) -> date:
    """The history window: 14 periods due, the first one's .. yesterday."""
    return now.date() - timedelta(days=14)


@pytest.fixture(scope="module")
def af(tmp_path_factory, postgres):
    base = tmp_path_factory.mktemp("history")
    name = postgres.create_database("chart_history_pages")
    return make_airflow_env(base, "http://127.0.0.1:9", postgres.conn_json(name), postgres.url(name))


@pytest.fixture(scope="module")
def seeded(af, now):
    """Periods first .. first+9 stored (first+2 after two failed tries), first+10 failed twice, first+11
    skipped by the API; two more periods and a second chart for the list."""
    engine = af.engine()
    first = first_period(now)

    def row(period: date | None, run: str, n: int, status: str, started: datetime) -> dict:
        return {"chart_id": 1, "dag_id": DAG, "run_id": run, "try_number": n, "period": period, "status": status,
                "started_at": started, "completed_at": started + timedelta(seconds=4), "duration_seconds": 4.0,
                "rankings_created": int(status == "success"), "error": "HTTP 503" if status == "failed" else None}

    with engine.begin() as conn:
        conn.execute(insert(chart), [
            {"id": 1, "slug": "history-daily", "name": "History Daily", "platform": "spotify", "frequency": "daily",
             "created_at": now},
            {"id": 2, "slug": "quiet-weekly", "name": "Quiet Weekly", "platform": "spotify", "frequency": "weekly",
             "publication_weekday": 4, "created_at": now}])
        conn.execute(insert(chart_sync_schedule), [
            {"id": 1, "chart_id": 1, "is_active": True, "sync_frequency": "daily", "history_start": first,
             "created_at": now, "updated_at": now},
            {"id": 2, "chart_id": 2, "is_active": True, "sync_frequency": "weekly",
             "history_start": now.date() - timedelta(days=60), "created_at": now, "updated_at": now}])
        rows = []
        for i in range(10):
            period, started = first + timedelta(days=i), now - timedelta(minutes=40 - i)
            run = f"scheduled__{period + timedelta(days=1)}T00:00:00+00:00"
            if i == 2:
                rows += [row(period, run, 1, "failed", started), row(period, run, 2, "failed", started)]
                rows.append(row(period, run, 3, "success", started + timedelta(seconds=30)))
            else:
                rows.append(row(period, run, 1, "success", started))
        failed = first + timedelta(days=10)
        rows += [row(failed, f"scheduled__{failed + timedelta(days=1)}T00:00:00+00:00", n, "failed",
                     now - timedelta(minutes=10 - n)) for n in (1, 2)]
        rows.append(row(first + timedelta(days=11), "manual__skipped", 1, "skipped", now - timedelta(minutes=5)))
        conn.execute(insert(chart_sync_execution), rows)
        conn.execute(insert(chart_ranking), [
            {"chart_id": 1, "period": first + timedelta(days=i), "ranking_date": "x", "entry_count": 1,
             "fetched_at": now} for i in range(10)])
    return engine


@pytest.fixture(scope="module")
def services(af, seeded):
    services = start_airflow(af, components=("api-server",))
    yield services
    stop_airflow(services)


@pytest.fixture(scope="module")
def get(services):
    cookies = {"_token": services.token("viewer")}

    def get(path: str, **params) -> requests.Response:
        r = requests.get(services.api_url + "/chart-sync" + path, params=params, cookies=cookies, timeout=60)
        assert r.status_code == 200, r.text[-2000:]
        return r

    return get


def rows(html: str) -> list[tuple[str, str, str]]:
    """(period, status, tries) of the history's rows."""
    return re.findall(r'<tr class="execution" data-period="([^"]*)" data-status="([^"]*)" data-tries="(\d+)"', html)


def test_schedule_page_history_is_one_row_per_period_with_tries_and_run_links(get, now):
    first = first_period(now)
    html = get("/ui/schedules/1").text
    history = rows(html)
    assert len(history) == 12 and len({p for p, _, _ in history}) == 12  # 16 tries, 12 periods
    assert history[0] == (str(first + timedelta(days=11)), "skipped", "1")
    assert history[1] == (str(first + timedelta(days=10)), "failed", "2")
    assert (str(first + timedelta(days=2)), "success", "3") in history
    assert html.count("<details class=\"tries\">") == 2 and "3 tries" in html
    run = f"scheduled__{first + timedelta(days=3)}T00:00:00+00:00"
    assert f'/dags/{DAG}/runs/{requests.utils.quote(run, safe="")}"' in html  # the Airflow UI's run route


def test_history_filters_by_latest_status_and_period_range(get, now):
    first = first_period(now)
    failed = rows(get("/ui/schedules/1", status="failed").text)
    assert failed == [(str(first + timedelta(days=10)), "failed", "2")]  # first+2 failed twice, then succeeded
    ranged = rows(get("/ui/schedules/1", **{"from": str(first + timedelta(days=1)),
                                            "to": str(first + timedelta(days=3))}).text)
    assert [p for p, _, _ in ranged] == [str(first + timedelta(days=d)) for d in (3, 2, 1)]
    assert "No period matches." in get("/ui/schedules/1", status="success", **{"from": str(now.date())}).text


def test_schedule_list_links_failed_periods_and_shows_a_running_catchup(get):
    html = get("/ui/schedules").text
    assert re.search(r'href="[^"]*/ui/schedules/1\?status=failed#history"[^>]*>1 failed period<', html)
    # 11 of 14 periods done (10 stored, 1 skipped by the API), all within the last hour: 11/h, ETA in ~16 min
    assert re.search(r"catchup 11/14 · 11/h · ETA in 1\d(\.\d)? min", html), html
    assert html.count('class="small catchup"') == 1  # the weekly chart has nothing running


def test_schedule_page_catchup_card_and_period_plots(get):
    html = get("/ui/schedules/1").text
    assert 'class="card stat catchup" data-done="11" data-total="14"' in html
    assert "periods/h · ETA" in html
    by_month = re.findall(r"<title>([A-Z][a-z]{2} \d{4}): (\d+) (stored|failed|skipped)</title>", html)
    assert sum(int(n) for _, n, status in by_month if status == "stored") == 10  # by month of period
    assert {status for _, _, status in by_month} == {"stored", "failed", "skipped"}
    assert "no period synced yet" not in html and "no period stored yet" not in html
    assert "Freshness by period" in html and "<polyline" in html


def test_stats_plots_by_period_are_not_empty_when_every_sync_ran_on_one_day(get):
    html = get("/ui/stats", days=30).text
    assert "Sync outcome by day of period" in html and "Coverage by day of period" in html
    outcomes = re.findall(r"<title>([A-Z][a-z]{2} \d\d): (\d+) (stored|failed|skipped)</title>", html)
    assert len({label for label, _, _ in outcomes}) == 12  # one column per period, not one per execution day
    assert ("1", "failed") in {(n, s) for _, n, s in outcomes}
    assert "no period synced yet" not in html and "no period due yet" not in html


def test_api_history_is_paged_by_period_with_the_pages_shape(services, now):
    first = first_period(now)
    r = requests.get(services.api_url + "/chart-sync/api/sync/schedules/1/history/",
                     params={"status": "success", "from": str(first), "to": str(first + timedelta(days=2)),
                             "page_size": 2},
                     headers={"Authorization": f"Bearer {services.token('viewer')}"}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["total"], body["page"], body["page_size"]) == (3, 1, 2)
    top = body["items"][0]
    assert (top["period"], top["status"], top["tries"]) == (str(first + timedelta(days=2)), "success", 3)
    assert [t["status"] for t in top["attempts"]] == ["success", "failed", "failed"]
    assert top["run_id"] == top["latest"]["run_id"] and top["first_stored_at"]
    bad = requests.get(services.api_url + "/chart-sync/api/sync/schedules/1/history/", params={"status": "nope"},
                       headers={"Authorization": f"Bearer {services.token('viewer')}"}, timeout=30)
    assert bad.status_code == 422
    missing = requests.get(services.api_url + "/chart-sync/api/sync/schedules/999/history/",
                           headers={"Authorization": f"Bearer {services.token('viewer')}"}, timeout=30)
    assert missing.status_code == 404
