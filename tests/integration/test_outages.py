"""Kill and outage tests (the databases going away, ``kill -9`` of a task's supervisor), on a
real scheduler, dag-processor and api-server (LocalExecutor), with the Airflow metadata DB and the
chart DB on two private PostgreSQL servers that the tests stop and start again, and the emulator as
the API. One Airflow serves every scenario (a start costs about a minute); each scenario syncs its
own daily charts (paused until it starts, a short history) and ends with the coverage check: every
expected period stored exactly once, no partial ranking (``entry_count`` = its entry rows), and
chart-sync agreeing with Airflow try by try (a failed row for every try Airflow failed or retried,
none for a try that succeeded).

- kill -9 of a running sync task process: nothing partial, the retry completes;
- the chart DB server stopped mid-catchup, then started: the retries complete, and every try that
  failed in between is a failed row in chart-sync, as in Airflow's try history;
- the chart DB down while the DAG files are parsed: every chart DAG stays listed, not stale;
- the metadata DB server restarted under load: Airflow 3.3.2's scheduler and dag-processor end
  themselves when it goes away (``_run_scheduler_loop`` re-raises); started again as a process
  manager would, the scheduler takes over and every run succeeds, nothing lost or doubled;
- kill -9 of the task's supervisor (the LocalExecutor worker that forked the task process) on the
  last try: the orphaned task process may still commit, yet chart-sync says about that try what
  Airflow says (failed, once it gives up on the heartbeat), and raises one failure alert.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select, update

from chartsync.supervisor import Liveness, health
from chartsync.store.tables import (
    chart,
    chart_ranking,
    chart_ranking_entry,
    chart_sync_alert,
    chart_sync_execution,
    chart_sync_schedule,
)
from stacks import BIN, AlertReceiver, alert_channel_env, make_airflow_env, session_postgres, start_airflow, stop_airflow, wait_for
from stacks.postgres import Postgres, start_postgres
from integration.test_failures import Airflow, task_process, webhook_failures

pytestmark = pytest.mark.integration

TASK = "sync_ranking"
PERIODS = 4  # days of history per chart: catchup runs (the first also pulls the newest period forward)
WEDGED_AFTER = 45  # s a running scheduler may report unhealthy before restart_exited kills it (make run: 60)
HEARTBEAT_TIMEOUT = 20  # s: when the scheduler gives up on a try whose supervisor is gone (production: 300)
KILLED_TASK = "spotify-top-200-gb-daily"
CHART_DB_OUTAGE = ("spotify-top-200-fr-daily", "spotify-top-200-de-daily")
METADATA_DB_OUTAGE = ("apple-music-top-100-gb-daily", "apple-music-top-100-fr-daily")
KILLED_SUPERVISOR = "shazam-top-200-us-daily"
SLUGS = (KILLED_TASK, *CHART_DB_OUTAGE, *METADATA_DB_OUTAGE, KILLED_SUPERVISOR)
FAILED_STATES = ("failed", "up_for_retry")


def dag_id(slug: str) -> str:
    return f"chart_sync__{slug}"


@dataclass
class Stack:
    af: object  # stacks.AirflowEnv
    services: object  # stacks.AirflowServices
    airflow: Airflow
    chart_pg: Postgres
    metadata_pg: Postgres
    receiver: AlertReceiver
    history_start: date
    liveness: Liveness = field(default_factory=lambda: Liveness(after=WEDGED_AFTER))

    @property
    def expected(self) -> list[date]:
        return [self.history_start + timedelta(days=i) for i in range(PERIODS)]


def copy_database(source: Postgres, name: str, target: Postgres) -> str:
    """``name`` from ``source`` into a new database of the same name on ``target`` (pg_dump | psql: a
    second or two, where ``airflow db migrate`` takes half a minute)."""
    from chartsync.localdb import bin_dir

    target.create_database(name)
    dump = subprocess.Popen([str(bin_dir() / "pg_dump"), "--no-owner", "--no-privileges", "-h", source.host,
                             "-p", str(source.port), "-U", source.user, "-d", name],
                            env={**os.environ, "PGPASSWORD": source.password}, stdout=subprocess.PIPE)
    subprocess.run([str(bin_dir() / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-h", target.host, "-p",
                    str(target.port), "-U", target.user, "-d", name], env={**os.environ, "PGPASSWORD": target.password},
                   stdin=dump.stdout, check=True, capture_output=True)
    assert dump.wait() == 0
    return name


@pytest.fixture(scope="module")
def stack(tmp_path_factory, emulator) -> Iterator[Stack]:
    started = time.monotonic()
    base = tmp_path_factory.mktemp("outages")
    chart_pg, metadata_pg = start_postgres(private=True), start_postgres(private=True)
    receiver = AlertReceiver()
    services = None
    try:
        db = chart_pg.create_database("chart")
        # a migrated metadata DB (with the pool) on the session's server, moved to the one we may stop
        af = make_airflow_env(base, emulator.url, chart_pg.conn_json(db), chart_pg.url(db))
        name = af.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].rsplit("/", 1)[1]
        af.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata_pg.url(copy_database(session_postgres(), name,
                                                                                      metadata_pg))
        af.env.update(alert_channel_env(receiver, channels="webhook"))
        af.env.update({
            "CHARTSYNC_RETRY_DELAY_SECONDS": "2",  # retries after 2-4, 4-8, 8-16 s (Airflow adds jitter)
            "CHARTSYNC_RECONCILE_SECONDS": "3",  # the scheduler's reconciler (production: 60 s)
            "CHARTSYNC_DEADLINE_ALERTS": "off",  # no triggerer here
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            # a restarted scheduler takes over the tries its predecessor queued soon (production: 300 s)
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",  # parses while the chart DB is down, soon
        })
        af.chartsync("charts", "import", "--platform", "spotify", "--platform", "apple-music",
                     "--platform", "shazam")
        adds = [subprocess.Popen([str(BIN / "chartsync"), "schedules", "add", slug, "--frequency", "daily",
                                  "--inactive"], env=af.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                for slug in SLUGS]  # paused: each scenario unpauses its own charts
        for add in adds:
            assert add.wait(timeout=120) == 0, add.stderr.read()
        history_start = date.today() - timedelta(days=PERIODS)
        with af.engine().begin() as conn:  # a short history keeps each catchup quick
            conn.execute(update(chart_sync_schedule).values(history_start=history_start))
        services = start_airflow(af)
        airflow = Airflow(services)
        for slug in SLUGS:
            wait_for(lambda s=slug: airflow.parsed(dag_id(s)), 120, f"{dag_id(slug)} parsed", interval=1)
        print(f"test_outages: Airflow up after {time.monotonic() - started:.0f} s")
        yield Stack(af, services, airflow, chart_pg, metadata_pg, receiver, history_start)
    finally:
        if services is not None:
            stop_airflow(services)
        receiver.close()
        chart_pg.stop()
        metadata_pg.stop()
        print(f"test_outages: {time.monotonic() - started:.0f} s in all")


# -- Airflow's side --------------------------------------------------------------------------------
def unpause(stack: Stack, *slugs: str) -> None:
    for slug in slugs:
        r = stack.airflow.patch(f"/dags/{dag_id(slug)}", {"is_paused": False})
        assert r.status_code == 200, r.text


def runs(stack: Stack, slug: str) -> list[dict]:
    return stack.airflow.get(f"/dags/{dag_id(slug)}/dagRuns?limit=100")["dag_runs"]


def tries(stack: Stack, slug: str, run_id: str) -> list[dict]:
    """Airflow's try history of the run's task: archived tries, then the current one."""
    return stack.airflow.get(f"/dags/{dag_id(slug)}/dagRuns/{run_id}/taskInstances/{TASK}/tries")["task_instances"]


def all_runs_ended(stack: Stack, slugs: tuple[str, ...], *, fail_on_failed: bool = True) -> dict | None:
    """Every catchup run of the charts, once each has ended (None before)."""
    found = {}
    for slug in slugs:
        rs = runs(stack, slug)
        failed = [r["dag_run_id"] for r in rs if r["state"] == "failed"]
        if fail_on_failed:
            assert not failed, f"{dag_id(slug)} runs failed: {failed}; see {stack.af.home / 'logs'}"
        if len(rs) < PERIODS or any(r["state"] not in ("success", "failed") for r in rs):
            return None
        found[slug] = rs
    return found


def running_task(stack: Stack, slug: str, try_number: int | None = None, period: date | None = None) -> dict | None:
    """A running task instance of the chart's DAG (of that try, of the run of that period: a daily run's
    logical date), once it has its task process."""
    for r in runs(stack, slug):
        if r["state"] != "running" or (period is not None and not r["logical_date"].startswith(period.isoformat())):
            continue
        ti = stack.airflow.ti(dag_id(slug), r["dag_run_id"])
        if ti["state"] == "running" and ti["pid"] and try_number in (None, ti["try_number"]):
            return ti
    return None


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def gone(pid: int) -> bool:
    """The process exited (or is a zombie nobody reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


# -- chart-sync's side -------------------------------------------------------------------------------
def chart_rows(engine, slug: str) -> tuple[list, list]:
    """The chart's rankings with their entry row counts, and its execution rows."""
    with engine.connect() as conn:
        chart_id = conn.execute(select(chart.c.id).where(chart.c.slug == slug)).scalar_one()
        entries = (select(chart_ranking_entry.c.ranking_id, func.count().label("n"))
                   .group_by(chart_ranking_entry.c.ranking_id).subquery())
        rankings = conn.execute(
            select(chart_ranking.c.period, chart_ranking.c.entry_count, func.coalesce(entries.c.n, 0).label("rows"))
            .select_from(chart_ranking.outerjoin(entries, entries.c.ranking_id == chart_ranking.c.id))
            .where(chart_ranking.c.chart_id == chart_id)).all()
        execs = conn.execute(select(chart_sync_execution).where(chart_sync_execution.c.chart_id == chart_id)
                             .order_by(chart_sync_execution.c.started_at, chart_sync_execution.c.id)).all()
    return rankings, execs


def failure_alerts(engine, slug: str) -> list:
    with engine.connect() as conn:
        return conn.execute(select(chart_sync_alert).where(
            chart_sync_alert.c.kind == "failure", chart_sync_alert.c.dag_id == dag_id(slug))).all()


def check_coverage(stack: Stack, slugs: tuple[str, ...], ended: dict) -> dict[tuple[str, str], list]:
    """The coverage check every scenario ends with; returns each run's Airflow tries.

    - every expected period is stored exactly once, and no ranking is partial;
    - chart-sync agrees with Airflow try by try: the tries Airflow failed or retried are exactly the
      tries with a failed execution row; each try's newest row says what Airflow says of it;
    - one failure alert per run that failed, none for a run that succeeded.
    """
    engine = stack.af.engine()
    history = {}
    for slug in slugs:
        rankings, execs = chart_rows(engine, slug)
        assert sorted(r.period for r in rankings) == stack.expected, f"{slug}: {sorted(r.period for r in rankings)}"
        partial = [(r.period, r.entry_count, r.rows) for r in rankings if r.entry_count != r.rows or not r.rows]
        assert not partial, f"{slug}: partial rankings (period, entry_count, entry rows): {partial}"
        alerts = failure_alerts(engine, slug)
        for run in ended[slug]:
            run_id = run["dag_run_id"]
            airflow_tries = tries(stack, slug, run_id)
            history[(slug, run_id)] = airflow_tries
            rows = [e for e in execs if e.run_id == run_id]
            failed_in_airflow = {t["try_number"] for t in airflow_tries if t["state"] in FAILED_STATES}
            failed_in_chartsync = {e.try_number for e in rows if e.status == "failed"}
            assert failed_in_chartsync == failed_in_airflow, (
                f"{dag_id(slug)} {run_id}: Airflow's tries {[(t['try_number'], t['state']) for t in airflow_tries]}"
                f", chart-sync's rows {[(e.try_number, e.status, e.error) for e in rows]}")
            for t in airflow_tries:
                of_try = [e for e in rows if e.try_number == t["try_number"]]
                newest = of_try[-1].status if of_try else None
                said = "failed" if t["state"] in FAILED_STATES else t["state"]
                assert newest == said, (f"{dag_id(slug)} {run_id} try {t['try_number']}: Airflow says {t['state']}, "
                                        f"chart-sync's newest row says {newest}: "
                                        f"{[(e.status, e.started_at, e.error) for e in of_try]}")
            run_alerts = [a for a in alerts if a.run_id == run_id]
            assert len(run_alerts) == (1 if run["state"] == "failed" else 0), (run_id, run["state"], run_alerts)
    return history


def airflow_failed_tries(history: dict) -> list[tuple]:
    return [(key, t["try_number"], t["state"]) for key, ts in history.items() for t in ts
            if t["state"] in FAILED_STATES]


# -- the scenarios -----------------------------------------------------------------------------------
def test_kill_9_of_a_sync_task_leaves_no_partial_ranking_and_the_retry_completes(stack, emulator_admin):
    slug = KILLED_TASK
    # one run's ranking request stalls, so the kill lands while that run's try fetches (the chart's other
    # runs go on meanwhile: max_active_runs)
    day = stack.history_start + timedelta(days=1)  # one run's period (the first run also syncs the newest)
    emulator_admin.fault(kind="slow", path_contains=f"{slug}/ranking/{day.isoformat()}", delay=25,
                         count=1)  # (client timeout: 30 s)
    unpause(stack, slug)
    ti = wait_for(lambda: running_task(stack, slug, 1, day), 120, f"{dag_id(slug)} {day} running")
    wait_for(lambda: emulator_admin.requests()["faults_injected"].get("slow"), 30, "the stalled ranking request")
    os.kill(task_process(ti, lambda: running_task(stack, slug, 1, day)), signal.SIGKILL)

    ended = wait_for(lambda: all_runs_ended(stack, (slug,)), 240, f"{PERIODS} runs of {dag_id(slug)}", interval=2)
    time.sleep(4)  # a reconciler pass more: nothing may be recorded twice
    history = check_coverage(stack, (slug,), ended)
    killed = [(t["try_number"], t["state"]) for t in history[(slug, ti["dag_run_id"])]]
    assert killed == [(1, "failed"), (2, "success")]  # the killed try, then the retry that completed


def test_chart_db_stopped_mid_catchup_then_started_every_failed_try_is_visible(stack, emulator_admin):
    slugs = CHART_DB_OUTAGE
    for slug in slugs:  # every ranking answers after 2 s: tries are in flight when the server stops
        emulator_admin.fault(kind="slow", path_contains=f"{slug}/ranking/", delay=2)
    unpause(stack, *slugs)
    wait_for(lambda: any(r["state"] == "success" for s in slugs for r in runs(stack, s)) or None, 120,
             "a first run synced")
    wait_for(lambda: running_task(stack, slugs[0]) or running_task(stack, slugs[1]), 60, "a try running")
    stack.chart_pg.halt()
    try:
        time.sleep(12)  # tries fail meanwhile: the task can record nothing, nor can the listeners
    finally:
        stack.chart_pg.resume()

    ended = wait_for(lambda: all_runs_ended(stack, slugs), 300, "every catchup run", interval=2)
    time.sleep(8)  # reconciler passes: the failures while the DB was down are recorded once it is back
    history = check_coverage(stack, slugs, ended)
    failed = airflow_failed_tries(history)
    assert failed, "the outage failed no try: nothing was tested"
    print(f"chart DB outage: {len(failed)} failed tries, all visible in chart-sync: {failed}")


def test_chart_db_down_while_dag_files_are_parsed_no_chart_dag_disappears(stack):
    def listed() -> dict[str, dict]:
        dags = stack.airflow.get("/dags?dag_id_pattern=chart_sync__%25&exclude_stale=false&limit=100")["dags"]
        return {d["dag_id"]: d for d in dags}

    before = listed()
    assert set(before) >= {dag_id(s) for s in SLUGS}
    probe = dag_id(SLUGS[0])
    parses = [before[probe]["last_parsed_time"]]
    stack.chart_pg.halt()
    try:
        def parsed_again() -> bool:
            now = listed()
            assert set(now) == set(before), f"DAGs disappeared: {set(before) - set(now)}"
            stale = [d for d, v in now.items() if v["is_stale"]]
            assert not stale, f"marked stale while the chart DB is down: {stale}"
            if now[probe]["last_parsed_time"] != parses[-1]:
                parses.append(now[probe]["last_parsed_time"])
            return len(parses) > 3

        wait_for(parsed_again, 90, "three parses of the DAG files while the chart DB is down", interval=1)
    finally:
        stack.chart_pg.resume()
    assert not stack.airflow.get("/importErrors")["import_errors"]


def restart_exited(stack: Stack) -> list[str]:
    """Start again every Airflow component that exited, and a scheduler that runs but reports unhealthy,
    as a process manager (systemd, Kubernetes with a liveness probe) and make run's supervisor do:
    Airflow's scheduler and dag-processor end themselves when the metadata DB goes away, and the
    scheduler can hang on its way out (``chartsync.supervisor.Liveness``)."""
    restarted = []
    if stack.liveness.wedged(health(stack.services.api_url), time.monotonic()):
        stack.liveness.reset()
        wedged = stack.services.procs["scheduler"]
        os.killpg(wedged.pid, signal.SIGKILL)  # its session: the scheduler and its LocalExecutor workers
        wedged.wait(timeout=30)
        restarted.append(f"scheduler (alive, unhealthy for {WEDGED_AFTER:.0f} s: killed)")
    for name, proc in list(stack.services.procs.items()):
        if proc.poll() is None:
            continue
        with open(stack.af.home / "logs" / f"{name}.out", "a") as out:
            stack.services.procs[name] = subprocess.Popen([str(BIN / "airflow"), name], env=stack.af.env,
                                                          stdout=out, stderr=subprocess.STDOUT,
                                                          start_new_session=True)
        restarted.append(f"{name} (exit code {proc.returncode})")
        stack.liveness.reset()  # a new scheduler is unhealthy until its first heartbeat
    return restarted


def test_metadata_db_restarted_under_load_the_scheduler_recovers_and_nothing_is_lost(stack, emulator_admin):
    slugs = METADATA_DB_OUTAGE
    for slug in slugs:  # every ranking answers after 2 s: tries are in flight when the server stops
        emulator_admin.fault(kind="slow", path_contains=f"{slug}/ranking/", delay=2)
    unpause(stack, *slugs)
    wait_for(lambda: running_task(stack, slugs[0]) or running_task(stack, slugs[1]), 120, "a try running")
    stack.metadata_pg.halt()
    try:
        time.sleep(5)
    finally:
        stack.metadata_pg.resume()
    restarted: list[str] = []

    def recovered():
        restarted.extend(restart_exited(stack))
        try:
            return all_runs_ended(stack, slugs)
        except requests.RequestException:  # the api-server's own connections are being renewed
            return None

    ended = wait_for(recovered, 240, "every catchup run after the metadata DB restart", interval=2)
    print(f"metadata DB restart: components restarted: {restarted or 'none'}")
    assert stack.services.procs["scheduler"].poll() is None
    time.sleep(4)  # a reconciler pass more
    check_coverage(stack, slugs, ended)


def test_kill_9_of_the_task_supervisor_chart_sync_agrees_with_airflow_and_alerts_once(stack, emulator_admin):
    slug = KILLED_SUPERVISOR
    day = stack.history_start + timedelta(days=1)  # one run's period (the first run also syncs the newest)
    ranking = f"{slug}/ranking/{day.isoformat()}"
    # its first three tries get a malformed ranking (the body fails and records it) ...
    emulator_admin.fault(kind="malformed", path_contains=ranking, count=3)
    unpause(stack, slug)
    wait_for(lambda: emulator_admin.requests()["faults_injected"].get("malformed", 0) >= 3, 180,
             "three malformed answers")
    # ... and the last one stalls (below the client's 30 s timeout) while its supervisor is killed
    emulator_admin.fault(kind="slow", path_contains=ranking, delay=28, count=1)
    ti = wait_for(lambda: running_task(stack, slug, 4), 120, f"{dag_id(slug)} try 4 running")
    run_id = ti["dag_run_id"]
    wait_for(lambda: emulator_admin.requests()["faults_injected"].get("slow"), 30, "the stalled ranking request")
    task = task_process(ti, lambda: running_task(stack, slug, 4))
    supervisor = parent_of(task)  # the LocalExecutor worker that forked the task process
    assert cmdline(supervisor).startswith("airflow worker -- LocalExecutor"), cmdline(supervisor)
    os.kill(supervisor, signal.SIGKILL)

    # Airflow keeps the try running until its heartbeat is missed, then fails it for good; the orphaned
    # task process gets its answer and commits the period meanwhile (either may come first)
    wait_for(lambda: gone(task), 60, "the orphaned task process to end")
    ended = wait_for(lambda: all_runs_ended(stack, (slug,), fail_on_failed=False), 120,
                     f"{PERIODS} runs of {dag_id(slug)}", interval=2)
    time.sleep(4)  # reconciler passes: nothing may be recorded twice
    assert {r["dag_run_id"]: r["state"] for r in ended[slug]}[run_id] == "failed"
    history = check_coverage(stack, (slug,), ended)  # the period the orphan stored counts too
    assert [(t["try_number"], t["state"]) for t in history[(slug, run_id)]] == [(n, "failed") for n in range(1, 5)]
    _, execs = chart_rows(stack.af.engine(), slug)
    last_try = [(e.status, e.error) for e in execs if e.run_id == run_id and e.try_number == 4]
    assert [status for status, _ in last_try] == ["success", "failed"], last_try  # the orphan's, then Airflow's
    assert last_try[-1][1].endswith("(the task body had recorded success for this try)")
    (alert,) = webhook_failures(stack.receiver, dag_id(slug))
    assert (alert["run_id"], alert["period"]) == (run_id, day.isoformat())
