"""On the real scheduler: gaps and coverage are live and every door shows the same ones (the schedule
page's card, strip and gap table, ``chartsync gaps list``, ``GET /api/sync/gaps/`` and the chart's
status), after syncs and after deletions; healing re-syncs exactly the missing periods, one gap
range's backfill after the other, and no completed run becomes a backfill run; a week the API
skipped is not a gap once the gap audit has asked it."""

from __future__ import annotations

import json

import re
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import requests
from sqlalchemy import delete, insert, select, update

from chartsync.store.tables import (
    chart,
    chart_expected_period,
    chart_ranking,
    chart_ranking_entry,
    chart_sync_execution,
    chart_sync_heal,
    chart_sync_schedule,
)
from stacks import start_airflow, stop_airflow, wait_for

pytestmark = pytest.mark.integration

DAILY = "deezer-top-100-gb-daily"
HOLIDAY = "deezer-top-100-global-weekly-holiday"
WINDOW = 12
UI = "/chart-sync/ui"
API = "/chart-sync/api/sync"


def chart_id(engine, slug):
    with engine.connect() as conn:
        return conn.execute(select(chart.c.id).where(chart.c.slug == slug)).scalar_one()


def stored_periods(engine, slug):
    with engine.connect() as conn:
        return sorted(conn.execute(select(chart_ranking.c.period).where(
            chart_ranking.c.chart_id == chart_id(engine, slug))).scalars())


class Doors:
    """What each door shows of one chart's gaps and coverage."""

    GAP_ROW = re.compile(r'<tr class="gap" data-heal="(\w*)"><td class="nowrap">([\d-]+)</td>'
                         r'<td class="nowrap">([\d-]+)</td><td class="num">(\d+)</td>')

    def __init__(self, af, services, engine, slug):
        self.af, self.base, self.slug = af, services.api_url, slug
        self.chart_id = chart_id(engine, slug)
        with engine.connect() as conn:
            self.schedule_id = conn.execute(select(chart_sync_schedule.c.id).where(
                chart_sync_schedule.c.chart_id == self.chart_id)).scalar_one()
        token = services.token()
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Bearer {token}"
        self.browser = requests.Session()
        self.browser.cookies.set("_token", token)

    def get(self, path, **params):
        r = self.api.get(self.base + path, params=params, timeout=60)
        assert r.status_code == 200, (path, r.status_code, r.text[:1000])
        return r.json()

    def page(self) -> dict:
        r = self.browser.get(f"{self.base}{UI}/schedules/{self.schedule_id}", timeout=60)
        assert r.status_code == 200, r.text[:1000]
        card = re.search(r'data-coverage-stored="(\d+)" data-coverage-expected="(\d+)"', r.text)
        counts = {k: int(n) for k, n in re.findall(r'data-count="([\w-]+)">(\d+)<', r.text)}
        return {"ranges": [(s, e, int(n)) for _, s, e, n in self.GAP_ROW.findall(r.text)],
                "heal": [h for h, *_ in self.GAP_ROW.findall(r.text)],
                "stored": int(card[1]), "expected": int(card[2]),
                "strip_synced": counts["synced"], "strip_gaps": counts["missing"] + counts["failed"]}

    def cli(self) -> list[tuple[str, str, int]]:
        rows = json.loads(self.af.chartsync("gaps", "list", self.slug, "-o", "json").stdout)
        return [(r["first"], r["last"], r["periods"]) for r in rows if r["chart"] == self.slug and r["state"] != "catchup"]

    def agree(self) -> list[tuple[str, str, int]]:
        """The gap ranges every door shows, asserted equal; the card and the strip count the same."""
        api = [(g["start"], g["end"], g["periods"]) for g in self.get(API + "/gaps/", chart_id=self.chart_id)["items"]]
        status = self.get(f"{API}/status/{self.chart_id}/")["coverage"]
        detail = self.get(f"{API}/schedules/{self.schedule_id}/")["coverage"]
        page = self.page()
        assert page["ranges"] == api == self.cli(), (page["ranges"], api)
        gap_periods = sum(n for _, _, n in api)
        assert status == detail and status["gap_periods"] == gap_periods
        assert (page["stored"], page["expected"]) == (status["stored_periods"], status["expected_periods"])
        assert page["strip_synced"] == page["stored"] and page["strip_gaps"] == gap_periods
        return api


def test_live_gaps_agree_everywhere_and_heal_resyncs_exactly_the_gaps(airflow_sqlite, emulator):
    af = airflow_sqlite
    af.env["CHARTSYNC_RECONCILE_SECONDS"] = "3"  # the scheduler's reconciler starts queued heal ranges
    af.chartsync("charts", "import", "--platform", "deezer")
    af.chartsync("schedules", "add", DAILY)
    af.chartsync("schedules", "add", HOLIDAY, "--no-history")
    engine = af.engine()
    start = date.today() - timedelta(days=WINDOW)
    window = [start + timedelta(days=i) for i in range(WINDOW)]
    holiday_id = chart_id(engine, HOLIDAY)
    with engine.begin() as conn:
        conn.execute(update(chart_sync_schedule).where(chart_sync_schedule.c.chart_id == chart_id(engine, DAILY))
                     .values(history_start=start))
        # the holiday chart's window reaches back over Christmas 2025; its published weeks are stored
        conn.execute(update(chart_sync_schedule).where(chart_sync_schedule.c.chart_id == holiday_id)
                     .values(created_at=datetime(2025, 12, 1, tzinfo=UTC)))
    published = requests.get(f"{emulator.url}/api/v2/chart/song/{HOLIDAY}/available-rankings",
                             params={"limit": 100}, headers={"x-app-id": "soundcharts", "x-api-key": "soundcharts"},
                             timeout=10).json()["items"]
    weeks = [date.fromisoformat(d[:10]) for d in published if d[:10] >= "2025-12-01"]
    assert date(2025, 12, 22) not in weeks and date(2025, 12, 15) in weeks and date(2025, 12, 29) in weeks
    with engine.begin() as conn:
        conn.execute(insert(chart_ranking), [
            {"chart_id": holiday_id, "period": d, "ranking_date": f"{d}T00:00:00+00:00", "entry_count": 0,
             "fetched_at": datetime.now(UTC)} for d in weeks])

    # the calendar alone expects the skipped week; once the audit has asked the API, it is not a gap
    assert "2025-12-22 " in af.chartsync("gaps", "list", HOLIDAY).stdout + " "
    af.chartsync("gaps", "audit", HOLIDAY)
    assert af.chartsync("gaps", "list", HOLIDAY).stdout.strip() == f"{HOLIDAY}: no gaps"
    assert af.chartsync("gaps", "list", "no-such-chart", check=False).returncode == 2

    services = start_airflow(af)
    try:
        token = services.token()
        dag_id = f"chart_sync__{DAILY}"
        airflow = requests.Session()
        airflow.headers["Authorization"] = f"Bearer {token}"

        def runs() -> dict[str, dict]:
            r = airflow.get(f"{services.api_url}/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100}, timeout=10)
            return {x["logical_date"][:10]: x for x in r.json().get("dag_runs", [])} if r.status_code == 200 else {}

        def synced():
            found = runs()
            assert not [r for r in found.values() if r["state"] == "failed"], found
            return len(found) >= WINDOW and all(r["state"] == "success" for r in found.values())

        wait_for(synced, 300, "the catchup of the daily chart", interval=2)
        assert stored_periods(engine, DAILY) == window
        doors = Doors(af, services, engine, DAILY)
        assert doors.agree() == []  # after the syncs: no gap anywhere

        # three gaps: two never run (rankings and runs deleted), one whose run succeeded (rankings deleted)
        never_run = [window[1], window[2], window[8], window[9]]
        data_gone = [window[5]]
        with engine.begin() as conn:
            ids = select(chart_ranking.c.id).where(chart_ranking.c.chart_id == doors.chart_id,
                                                   chart_ranking.c.period.in_(never_run + data_gone))
            conn.execute(delete(chart_ranking_entry).where(chart_ranking_entry.c.ranking_id.in_(ids)))
            conn.execute(delete(chart_ranking).where(chart_ranking.c.id.in_(ids)))
        before = runs()
        for day in never_run:
            r = airflow.delete(f"{services.api_url}/api/v2/dags/{dag_id}/dagRuns/{before[day.isoformat()]['dag_run_id']}",
                               timeout=10)
            assert r.status_code == 204, r.text
        completed = {d: r["dag_run_id"] for d, r in runs().items()}  # every run left succeeded
        assert doors.agree() == [(window[1].isoformat(), window[2].isoformat(), 2),
                                 (window[5].isoformat(), window[5].isoformat(), 1),
                                 (window[8].isoformat(), window[9].isoformat(), 2)]

        healed_at = datetime.now(UTC)
        out = af.chartsync("gaps", "heal", DAILY).stdout
        assert f"{DAILY}: created: " in out and "2 more range(s) queued" in out, out
        assert "1 successful run(s) whose rankings are gone cleared" in out, out
        # one range's backfill at a time, the last range waits; the first range (and the cleared run's period)
        # may be re-synced already under a quick scheduler, so its gap is gone from the list
        states = [g["heal"] for g in doors.get(API + "/gaps/", chart_id=doors.chart_id)["items"]]
        assert states[-1] == "queued" and states.count("running") <= 1 and set(states) <= {"running", "queued"}, states
        assert doors.page()["heal"][-1] == "queued"

        def done() -> bool:
            with engine.connect() as conn:  # the last range is done once Airflow marked its backfill complete
                open_heals = conn.execute(select(chart_sync_heal.c.id).where(
                    chart_sync_heal.c.status.in_(("queued", "running")))).all()
            return not open_heals and not doors.get(API + "/gaps/", chart_id=doors.chart_id)["items"] and all(
                r["state"] == "success" for r in runs().values())

        wait_for(done, 420, "the heal: every gap range backfilled in turn", interval=3)
        time.sleep(5)  # nothing more may run
        after = runs()
        assert doors.agree() == []
    finally:
        stop_airflow(services)

    assert stored_periods(engine, DAILY) == window
    with engine.connect() as conn:
        resynced = sorted({r.period for r in conn.execute(select(chart_sync_execution.c.period).where(
            chart_sync_execution.c.chart_id == doors.chart_id, chart_sync_execution.c.started_at >= healed_at))})
        heal_rows = conn.execute(select(chart_sync_heal.c.start_period, chart_sync_heal.c.end_period,
                                        chart_sync_heal.c.status, chart_sync_heal.c.backfill_id)
                                 .where(chart_sync_heal.c.status != "cancelled")
                                 .order_by(chart_sync_heal.c.start_period)).all()
    assert resynced == sorted(never_run + data_gone)  # exactly the gaps, never a stored period
    for day, run_id in completed.items():  # no completed run became a backfill run (the cleared one neither)
        assert after[day]["dag_run_id"] == run_id and after[day]["run_type"] == "scheduled", (day, after[day])
    backfilled = sorted(d for d, r in after.items() if r["run_type"] == "backfill")
    assert backfilled == sorted(d.isoformat() for d in never_run)
    # the queue: the first range, then each waiting range that was still a gap when the one before completed
    ranges = {(r.start_period, r.end_period) for r in heal_rows}
    assert {(window[1], window[2]), (window[8], window[9])} <= ranges <= {
        (window[1], window[2]), (window[5], window[5]), (window[8], window[9])}, heal_rows
    assert {r.status for r in heal_rows} == {"done"} and len({r.backfill_id for r in heal_rows}) == len(heal_rows)

    # the daily audit DAG, run for real, only refreshes the expected periods: nothing to heal after it
    af.airflow("dags", "test", "chart_sync_gap_audit")
    with engine.connect() as conn:
        refreshed = sorted(conn.execute(select(chart_expected_period.c.period).where(
            chart_expected_period.c.chart_id == doors.chart_id, chart_expected_period.c.expected)).scalars())
    assert refreshed == window
    assert af.chartsync("gaps", "list", DAILY).stdout.strip() == f"{DAILY}: no gaps"
    assert "nothing-to-heal" in af.chartsync("gaps", "heal", DAILY).stdout
