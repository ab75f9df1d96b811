"""The fault soak (benchmarks/soak.py runs it at scale, tests/integration/test_soak.py small): a catchup
of many charts on a real Airflow while the API misbehaves, then a count of what was lost, doubled, cut
short or hidden. ``run_soak`` does one soak in an Airflow home; ``table`` prints its report."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta


import requests
from sqlalchemy import func, select, update

from chartsync import demo, settings
from chartsync.core import calendar
from chartsync.core.calendar import Frequency
from chartsync.soundcharts.client import SoundchartsClient
from chartsync.store.tables import (
    chart,
    chart_ranking,
    chart_ranking_entry,
    chart_sync_alert,
    chart_sync_execution,
    chart_sync_schedule,
)
from stacks.airflow import AirflowEnv, AirflowServices, start_airflow, stop_airflow, wait_for

# Charts of the emulator's catalogue, daily and weekly in turn (weekly ones publish on Thu, Fri, Mon).
DAILY = ("spotify-top-200-global-daily", "spotify-top-200-us-daily", "apple-music-top-200-global-daily",
         "shazam-top-200-global-daily", "deezer-top-100-fr-daily", "spotify-top-200-gb-daily",
         "apple-music-top-100-us-daily", "shazam-top-200-us-daily", "deezer-top-100-gb-daily")
WEEKLY = ("spotify-top-200-global-weekly", "shazam-top-200-fr-weekly", "deezer-top-200-fr-weekly",
          "spotify-top-200-us-weekly", "shazam-top-200-gb-weekly", "spotify-top-200-de-weekly",
          "shazam-top-200-de-weekly")
PLATFORMS = ("spotify", "apple-music", "shazam", "deezer")
TASK = "sync_ranking"
RANKING_PATH = "/ranking/"
HANG_DELAY = SoundchartsClient.timeout + 15  # held past the client's read timeout: it times out and retries
CREDENTIALS = {"x-app-id": "soundcharts", "x-api-key": "soundcharts"}  # the emulator's (stacks.soundcharts_conn)
FAILED_STATES = {"failed", "up_for_retry", "upstream_failed"}
ENDED_RUN_STATES = {"success", "failed"}


@dataclass(frozen=True)
class Load:
    charts: int = 8
    periods: int = 30
    fault_rate: float = 0.10  # 429, 500 and hang, a third each
    malformed_rate: float = 0.01
    seed: int = 7
    retry_delay: float = 5.0  # CHARTSYNC_RETRY_DELAY_SECONDS unless set
    timeout: float = 3600.0  # seconds to wait for the catchup to end

    def slugs(self) -> list[str]:
        if self.charts > len(DAILY) + len(WEEKLY):
            raise ValueError(f"at most {len(DAILY) + len(WEEKLY)} charts")
        pairs = [s for pair in zip(DAILY, WEEKLY, strict=False) for s in pair] + list(DAILY[len(WEEKLY):])
        return pairs[:self.charts]


def fault_rules(load: Load) -> list[dict]:
    """Rate rules on ranking requests. The emulator asks hang, 429, 500, malformed in turn, each with its
    own draw, so each rule's rate is its share of what the earlier ones left over."""
    shares = [("hang", load.fault_rate / 3), ("429", load.fault_rate / 3), ("500", load.fault_rate / 3),
              ("malformed", load.malformed_rate)]
    rules, left = [], 1.0
    for kind, share in shares:
        if share > 0:
            rule = {"kind": kind, "path_contains": RANKING_PATH, "rate": round(share / left, 6)}
            if kind == "hang":
                rule["delay"] = HANG_DELAY
            rules.append(rule)
        left -= share
    return rules


# -- the emulator, through its admin API (an in-process server or the suite's) -----------------------------
class Emulator:
    def __init__(self, url: str) -> None:
        self.url = url

    def admin(self, method: str, path: str, body: object = None) -> dict:
        r = requests.request(method, f"{self.url}/__admin/{path}", json=body, timeout=10)
        r.raise_for_status()
        return r.json()

    def published(self, slug: str) -> list[date]:
        """The ranking dates the API lists for the chart (no faults on this path)."""
        items, offset, total = [], 0, None
        while total is None or offset < total:
            r = requests.get(f"{self.url}/api/v2/chart/song/{slug}/available-rankings", headers=CREDENTIALS,
                             params={"limit": 100, "offset": offset}, timeout=30)
            r.raise_for_status()
            body = r.json()
            items += body["items"]
            total, offset = body["page"]["total"], offset + len(body["items"])
            if not body["items"]:
                break
        return [date.fromisoformat(item[:10]) for item in items]


# -- Airflow's view, through its REST API -------------------------------------------------------------------
class AirflowApi:
    def __init__(self, services: AirflowServices) -> None:
        self.url = f"{services.api_url}/api/v2"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {services.token()}"

    def get(self, path: str, **params) -> dict | None:
        r = self.session.get(f"{self.url}{path}", params=params, timeout=60)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()

    def runs(self, dag_id: str) -> list[dict]:
        runs: list[dict] = []
        while True:
            page = self.get(f"/dags/{dag_id}/dagRuns", limit=100, offset=len(runs), order_by="logical_date")
            if page is None:
                return []
            runs += page["dag_runs"]
            if not page["dag_runs"] or len(runs) >= page["total_entries"]:
                return runs

    def tries(self, dag_id: str, run_id: str) -> dict[int, str]:
        """try number -> its state; failed, up_for_retry and upstream_failed read as failed."""
        page = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{TASK}/tries") or {"task_instances": []}
        return {t["try_number"]: "failed" if t["state"] in FAILED_STATES else t["state"]
                for t in page["task_instances"] if t["try_number"]}


# -- counting --------------------------------------------------------------------------------------------------
@dataclass
class Chart:
    slug: str
    chart_id: int
    frequency: Frequency
    weekday: int | None
    history_start: date
    runs: int  # catchup runs Airflow owes: one per period up to the latest complete one

    @property
    def dag_id(self) -> str:
        return settings.DAG_ID_PREFIX + self.slug


@dataclass
class Report:
    load: Load
    charts: list[Chart]
    ranking_requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    expected_periods: int = 0
    stored_periods: int = 0
    missing: list[str] = field(default_factory=list)  # "slug period"
    duplicates: int = 0
    partial: int = 0
    runs: Counter = field(default_factory=Counter)  # Airflow's final run states
    tries_failed_airflow: int = 0
    tries_failed_chartsync: int = 0
    runs_failed_airflow: int = 0
    runs_failed_chartsync: int = 0
    disagreements: list[str] = field(default_factory=list)
    alerts: Counter = field(default_factory=Counter)
    wall_seconds: float = 0.0
    timed_out: bool = False

    @property
    def faults_total(self) -> int:
        return sum(self.faults.values())

    @property
    def runs_expected(self) -> int:
        return sum(c.runs for c in self.charts)

    def misses(self) -> list[str]:
        """The targets missed, in words (empty: all met)."""
        misses = []
        if self.timed_out:
            misses.append(f"the catchup did not end within {self.load.timeout:.0f} s")
        if self.runs_ended < self.runs_expected:
            misses.append(f"{self.runs_ended} of {self.runs_expected} runs ended")
        if self.missing or self.stored_periods < self.expected_periods:
            misses.append(f"{len(self.missing)} published periods not stored: {', '.join(self.missing[:10])}")
        if self.duplicates:
            misses.append(f"{self.duplicates} duplicate (chart, period) rankings")
        if self.partial:
            misses.append(f"{self.partial} partial rankings")
        if self.disagreements:
            misses.append(f"{len(self.disagreements)} runs where Airflow and chart-sync disagree: "
                          + "; ".join(self.disagreements[:5]))
        if self.alerts["failure"] != self.runs_failed_airflow:
            misses.append(f"{self.alerts['failure']} failure alerts for {self.runs_failed_airflow} failed runs")
        return misses

    @property
    def runs_ended(self) -> int:
        return sum(n for state, n in self.runs.items() if state in ENDED_RUN_STATES)


def window_start(frequency: Frequency, weekday: int | None, periods: int, now: datetime) -> date:
    """The first of ``periods`` periods that end by ``now``: the history start giving that many catchup runs."""
    latest = calendar.latest_complete_period(frequency, now, weekday).start
    step = timedelta(weeks=1) if frequency is Frequency.WEEKLY else timedelta(days=1)
    return latest - step * (periods - 1)


def catchup_runs(c: Chart, now: datetime) -> int:
    latest = calendar.latest_complete_period(c.frequency, now, c.weekday).start
    return len(calendar.periods_between(c.frequency, c.history_start, latest, c.weekday))


def count_store(engine, charts: list[Chart], published: dict[str, list[date]], report: Report) -> None:
    """Periods stored against published, duplicates, partial rankings, alerts."""
    ids = [c.chart_id for c in charts]
    with engine.connect() as conn:
        stored = defaultdict(set)
        for chart_id, period in conn.execute(select(chart_ranking.c.chart_id, chart_ranking.c.period)
                                             .where(chart_ranking.c.chart_id.in_(ids))):
            stored[chart_id].add(period)
        report.duplicates = len(conn.execute(
            select(chart_ranking.c.chart_id, chart_ranking.c.period).where(chart_ranking.c.chart_id.in_(ids))
            .group_by(chart_ranking.c.chart_id, chart_ranking.c.period).having(func.count() > 1)).all())
        entries = (select(chart_ranking.c.id, chart_ranking.c.entry_count,
                          func.count(chart_ranking_entry.c.id).label("rows"))
                   .select_from(chart_ranking.outerjoin(chart_ranking_entry,
                                                        chart_ranking_entry.c.ranking_id == chart_ranking.c.id))
                   .where(chart_ranking.c.chart_id.in_(ids))
                   .group_by(chart_ranking.c.id, chart_ranking.c.entry_count).subquery())
        report.partial = conn.execute(select(func.count()).select_from(entries)
                                      .where(entries.c.rows != entries.c.entry_count)).scalar_one()
        report.alerts = Counter(dict(conn.execute(
            select(chart_sync_alert.c.kind, func.count()).where(chart_sync_alert.c.chart_id.in_(ids))
            .group_by(chart_sync_alert.c.kind)).all()))
    report.expected_periods = report.stored_periods = 0
    report.missing = []
    for c in charts:
        expected = {d for d in published[c.slug] if d >= c.history_start}
        report.expected_periods += len(expected)
        report.stored_periods += len(expected & stored[c.chart_id])
        report.missing += [f"{c.slug} {d}" for d in sorted(expected - stored[c.chart_id])]


def chartsync_tries(engine, charts: list[Chart]) -> dict[tuple[str, str], dict[int, str]]:
    """(dag_id, run_id) -> try number -> chart-sync's word for it: failed if any row of the try failed,
    else success (a period the API skipped is a successful try)."""
    tries: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    with engine.connect() as conn:
        rows = conn.execute(select(chart_sync_execution.c.dag_id, chart_sync_execution.c.run_id,
                                   chart_sync_execution.c.try_number, chart_sync_execution.c.status)
                            .where(chart_sync_execution.c.chart_id.in_([c.chart_id for c in charts])))
        for dag_id, run_id, try_number, status in rows:
            word = "failed" if status == "failed" else "success" if status in ("success", "skipped") else status
            known = tries[dag_id, run_id].get(try_number)
            tries[dag_id, run_id][try_number] = "failed" if "failed" in (known, word) else word
    return tries


def count_runs(airflow: AirflowApi, charts: list[Chart], report: Report) -> dict[str, list[dict]]:
    """Airflow's runs of each chart DAG, and their final states counted (cheap: a page per 100 runs)."""
    runs = {c.dag_id: airflow.runs(c.dag_id) for c in charts}
    report.runs = Counter(run["state"] for dag_runs in runs.values() for run in dag_runs)
    return runs


def compare_runs(airflow: AirflowApi, engine, charts: list[Chart], report: Report) -> None:
    """Run by run: Airflow's final state and its tries against the rows chart-sync wrote."""
    runs = count_runs(airflow, charts, report)
    recorded = chartsync_tries(engine, charts)
    report.disagreements = []
    report.tries_failed_airflow = report.tries_failed_chartsync = 0
    report.runs_failed_airflow = report.runs_failed_chartsync = 0
    for dag_id, dag_runs in runs.items():
        for run in dag_runs:
            if run["state"] not in ENDED_RUN_STATES:
                continue
            seen = airflow.tries(dag_id, run["dag_run_id"])
            ours = recorded.get((dag_id, run["dag_run_id"]), {})
            if run["state"] == "failed" and not seen:  # failed before its task ran: chart-sync says try 0
                seen = {0: "failed"}
            report.tries_failed_airflow += sum(s == "failed" for s in seen.values())
            report.tries_failed_chartsync += sum(s == "failed" for s in ours.values())
            report.runs_failed_airflow += run["state"] == "failed"
            ours_final = ours[max(ours)] if ours else None
            report.runs_failed_chartsync += ours_final == "failed"
            if seen != ours or (run["state"] == "failed") != (ours_final == "failed"):
                report.disagreements.append(f"{dag_id} {run['dag_run_id']}: Airflow {run['state']} "
                                            f"{dict(sorted(seen.items()))}, chart-sync {dict(sorted(ours.items()))}")


def failed_tries(engine, charts: list[Chart]) -> int:
    """Failed tries chart-sync recorded so far (for the progress lines)."""
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(chart_sync_execution).where(
            chart_sync_execution.c.chart_id.in_([c.chart_id for c in charts]),
            chart_sync_execution.c.status == "failed")).scalar_one()


def faults_injected(emulator: Emulator, report: Report) -> None:
    counts = emulator.admin("GET", "requests")
    report.faults = {k: n for k, n in counts["faults_injected"].items() if n}
    report.ranking_requests = sum(n for path, n in counts["by_path"].items() if RANKING_PATH in path)


# -- the soak -------------------------------------------------------------------------------------------------
def set_up(af: AirflowEnv, load: Load, now: datetime) -> list[Chart]:
    """Import the charts, schedule them (no track metadata: the soak is about rankings) and move each
    history start so the catchup owes ``load.periods`` runs."""
    af.chartsync("charts", "import", *[arg for p in PLATFORMS for arg in ("--platform", p)])
    engine = af.engine()
    charts = []
    for slug in load.slugs():
        af.chartsync("schedules", "add", slug, "--no-metadata")
        with engine.begin() as conn:
            row = conn.execute(select(chart.c.id, chart_sync_schedule.c.sync_frequency, chart.c.publication_weekday)
                               .join(chart_sync_schedule, chart_sync_schedule.c.chart_id == chart.c.id)
                               .where(chart.c.slug == slug)).one()
            frequency = Frequency.parse(row.sync_frequency)
            weekday = row.publication_weekday if frequency is Frequency.WEEKLY else None
            start = window_start(frequency, weekday, load.periods, now)
            conn.execute(update(chart_sync_schedule).where(chart_sync_schedule.c.chart_id == row.id)
                         .values(history_start=start))
        c = Chart(slug, row.id, frequency, weekday, start, 0)
        c.runs = catchup_runs(c, now)
        charts.append(c)
    return charts


def run_soak(load: Load, af: AirflowEnv, emulator_url: str, log: Callable[[str], None] = print) -> Report:
    """One soak in the Airflow home ``af`` (stacks.make_airflow_env: its chart DB and metadata DB on
    PostgreSQL) against the emulator at ``emulator_url``."""
    started = time.monotonic()
    log("soak: importing the charts and scheduling them")
    emulator = Emulator(emulator_url)
    af.env = demo.airflow_env(af.env, demo.cpu_count())  # sized like make run: LocalExecutor, slots per core
    af.env.setdefault(settings.RETRY_DELAY_ENV, f"{load.retry_delay:g}")
    now = datetime.now(UTC)
    charts = set_up(af, load, now)
    engine = af.engine()
    report = Report(load, charts)
    log(f"soak: {len(charts)} charts, {report.runs_expected} catchup runs, seed {load.seed}; "
        f"parallelism {af.env['AIRFLOW__CORE__PARALLELISM']}, logs in {af.home / 'logs'}")

    old_seed = emulator.admin("GET", "seed")["seed"]
    emulator.admin("POST", "reset")
    emulator.admin("POST", "seed", {"seed": load.seed})
    emulator.admin("POST", "faults", fault_rules(load))
    services = start_airflow(af, ("api-server", "scheduler", "dag-processor", "triggerer"))
    try:
        log(f"[{time.monotonic() - started:5.0f} s] Airflow is up; faults armed: {fault_rules(load)}")
        airflow = AirflowApi(services)
        deadline = time.monotonic() + load.timeout
        while True:  # Airflow's run list only: the tries are compared once the runs ended
            count_runs(airflow, charts, report)
            faults_injected(emulator, report)
            log(f"[{time.monotonic() - started:5.0f} s] runs ended {report.runs_ended}/{report.runs_expected} "
                f"({report.runs['failed']} failed, {report.runs['running'] + report.runs['queued']} active), "
                f"failed tries recorded {failed_tries(engine, charts)}, faults injected {report.faults_total} "
                f"{report.faults or ''}")
            if report.runs_ended >= report.runs_expected and report.runs_ended == sum(report.runs.values()):
                break
            if time.monotonic() > deadline:
                report.timed_out = True
                break
            time.sleep(15)
        # failures are recorded by task bodies, listeners and the reconciler: give the last ones time to land
        def agreed() -> bool:
            compare_runs(airflow, engine, charts, report)
            return not report.disagreements

        try:
            wait_for(agreed, 30, "chart-sync to agree with Airflow", interval=3)
        except TimeoutError:
            pass  # the table says where they disagree
    finally:
        stop_airflow(services)
        emulator.admin("DELETE", "faults")
        emulator.admin("POST", "seed", {"seed": old_seed})
    faults_injected(emulator, report)
    published = {c.slug: emulator.published(c.slug) for c in charts}
    count_store(engine, charts, published, report)
    engine.dispose()
    report.wall_seconds = time.monotonic() - started
    return report


# -- the table ------------------------------------------------------------------------------------------------
def table(report: Report) -> str:
    load, charts = report.load, report.charts
    daily = sum(c.frequency is Frequency.DAILY for c in charts)
    per_kind = ", ".join(f"{k} {n}" for k, n in sorted(report.faults.items())) or "none"
    share = 100 * report.faults_total / report.ranking_requests if report.ranking_requests else 0
    alerts = ", ".join(f"{k} {n}" for k, n in sorted(report.alerts.items())) or "none"
    ok = "yes" if not report.disagreements else f"no ({len(report.disagreements)} runs)"
    rows = [
        ("load", f"{len(charts)} charts ({daily} daily, {len(charts) - daily} weekly) x {load.periods} periods: "
                 f"{report.runs_expected} catchup runs", ""),
        ("faults armed", f"{100 * load.fault_rate:g} % of ranking requests 429 / 500 / hang {HANG_DELAY:g} s "
                         f"(a third each), {100 * load.malformed_rate:g} % malformed; seed {load.seed}", ""),
        ("faults injected", f"{report.faults_total} of {report.ranking_requests} ranking requests "
                            f"({share:.1f} %): {per_kind}", "> 0"),
        ("periods stored / published", f"{report.stored_periods} / {report.expected_periods}", "all"),
        ("duplicate (chart, period)", str(report.duplicates), "0"),
        ("partial rankings", str(report.partial), "0"),
        ("runs ended (success / failed)", f"{report.runs_ended} / {report.runs_expected} "
                                          f"({report.runs['success']} / {report.runs['failed']})", "all"),
        ("failed tries: Airflow / chart-sync", f"{report.tries_failed_airflow} / {report.tries_failed_chartsync}",
         "equal"),
        ("failed runs: Airflow / chart-sync", f"{report.runs_failed_airflow} / {report.runs_failed_chartsync}",
         "equal"),
        ("Airflow and chart-sync agree run by run", ok, "yes"),
        ("alerts raised", alerts, "failure = failed runs"),
        ("wall time", f"{report.wall_seconds / 60:.1f} min", ""),
    ]
    lines = ["| measure | value | target |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {target} |" for name, value, target in rows]
    return "\n".join(lines)
