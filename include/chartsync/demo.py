"""``make run``: the local product, started and stopped as one.

Starts the Soundcharts emulator (unless SOUNDCHARTS_APP_ID and SOUNDCHARTS_API_KEY are set), imports
its charts, seeds three demo schedules (once: a second start adds nothing), then runs Airflow's
components (api-server, scheduler, dag-processor, triggerer; LocalExecutor) and prints a short
banner: the URL, each user with their password, and where the logs are. Component output goes to
files under $AIRFLOW_HOME/logs/; the console shows only the banner and warnings.

Ctrl-C or SIGTERM stops everything it started within 20 s: the scheduler first (running tasks
get a few seconds to finish and report), then the rest; whatever is left at the deadline is killed.
Nothing escapes that stop: on Linux this process is the subreaper of everything it starts, so the
workers of a component killed with SIGKILL stay in its tree (and are killed before that component
is started again), and each component gets SIGTERM should this process die.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from chartsync import demo_data, localdb, settings
from chartsync.supervisor import (
    LIVENESS_EVERY,
    MAX_RESTARTS,
    RESTART_WINDOW,
    RUN_LOG,
    WEDGED_AFTER,
    Liveness,
    Run,
    Signals,
    Stopped,
    health,
    warn,
)

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
MAX_SLOTS = 8  # the default parallelism's ceiling, however many cores
START_TIMEOUT = 300.0  # seconds for every component to report healthy (2 shared cores: be patient)
LIVE_CONNECTIONS = (settings.CHART_DB_CONN_ID, settings.SOUNDCHARTS_CONN_ID)  # set here through AIRFLOW_CONN_*
EXECUTION_API_TIMEOUT = 30  # seconds: [workers] execution_api_timeout (Airflow's default: 5)
EPILOG = f"""\
sizing: [core] parallelism (= the LocalExecutor's worker processes, each running one task at a
  time) is one per CPU core, at least 2, at most {MAX_SLOTS}; override with {settings.PARALLELISM_ENV}=N, or set
  AIRFLOW__CORE__PARALLELISM, which wins. The dag-processor parses with one process
  (AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES overrides). On 2 cores that is 11 processes
  (12 with make) at most. A task's calls to the api-server wait up to {EXECUTION_API_TIMEOUT} s
  (AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT; Airflow's default, 5 s, fails tries on a busy machine).
network: the api-server binds {DEFAULT_HOST} (set {settings.HOST_ENV}=0.0.0.0, or AIRFLOW__API__HOST, to
  listen elsewhere) on AIRFLOW__API__PORT (default {DEFAULT_PORT}). The scheduler's and triggerer's log
  servers are not started: the api-server reads task logs from $AIRFLOW_HOME/logs directly.
restarts: a component that exits after start-up (the scheduler does when the metadata DB goes away for
  a moment) is started again, up to {MAX_RESTARTS} times in {RESTART_WINDOW / 60:.0f} minutes; then make run stops.
  What is left of it (a killed scheduler's LocalExecutor workers) is killed first.
connections: chart_db and soundcharts_default reach Airflow as AIRFLOW_CONN_* variables; at each start they
  are also written to the metadata DB, so that Airflow's Connections page shows what the tasks use.
logs: $AIRFLOW_HOME/logs/api-server.log, scheduler.log, dag-processor.log, triggerer.log,
  {RUN_LOG}; task logs under $AIRFLOW_HOME/logs/dag_id=*/.
users: [core] simple_auth_manager_users (make sets admin:admin,viewer:viewer, i.e. user:role); the
  passwords are in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated.
databases: Airflow's metadata DB and the chart DB on the project's PostgreSQL (python -m chartsync.localdb
  --help: data in $AIRFLOW_HOME/postgres, port {settings.PG_PORT_ENV}, default {settings.DEFAULT_PG_PORT}), started
  first and stopped last; AIRFLOW__DATABASE__SQL_ALCHEMY_CONN and AIRFLOW_CONN_CHART_DB name other servers,
  {settings.CHART_DB_ENV}=sqlite keeps the chart DB in SQLite. Expects them migrated (make setup)."""


# -- sizing and addresses ------------------------------------------------------------------------------
def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parallelism(cores: int, env: dict[str, str]) -> int:
    """Task slots: CHARTSYNC_PARALLELISM, else one per core, at least 2 and at most ``MAX_SLOTS``.

    Each slot costs two processes while it runs a task (the LocalExecutor's worker, which Airflow
    3.3.2 forks once per slot when the scheduler starts, and the task the worker forks) and about
    0.3 GiB; two slots keep a 2-core machine at 11 processes and under 2 GiB. More than
    ``MAX_SLOTS`` buys nothing here: the soundcharts_api pool runs 4 syncs at a time.
    """
    text = env.get(settings.PARALLELISM_ENV, "").strip()
    if not text:
        return min(max(2, cores), MAX_SLOTS)
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{settings.PARALLELISM_ENV} must be a whole number of task slots, at least 1; "
                         f"not {text!r}")
    return int(text)


def _loopback(host: str) -> str:
    """Where this machine reaches a server bound to ``host``."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "localhost") else "::1" if host in ("::", "[::]") else host


def _url(host: str, port: int) -> str:
    host = _loopback(host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def airflow_env(env: dict[str, str], cores: int) -> dict[str, str]:
    """The environment of Airflow's components: sized, bound, and pointed at one another.

    A setting the user already made in the environment wins; ``airflow.cfg``'s parallelism does not
    (the generated file always says 32).
    """
    env = dict(env)
    host = env.get(settings.HOST_ENV) or env.get("AIRFLOW__API__HOST") or DEFAULT_HOST
    env["AIRFLOW__API__HOST"] = host
    env.setdefault("AIRFLOW__API__PORT", str(DEFAULT_PORT))
    if not env.get("AIRFLOW__API__BASE_URL"):  # else Airflow derives it from the base URL
        env.setdefault("AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                       f"{_url(host, int(env['AIRFLOW__API__PORT']))}/execution/")
    env.setdefault("AIRFLOW__CORE__PARALLELISM", str(parallelism(cores, env)))
    env.setdefault("AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES", "1")
    env.setdefault("AIRFLOW__API__WORKERS", "1")
    # the task supervisors' calls to the api-server (default 5 s): on one machine a catchup keeps every core
    # busy, and a start call that times out fails the try before it runs (Airflow's docs: raise it under load)
    env.setdefault("AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT", str(EXECUTION_API_TIMEOUT))
    env.setdefault("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")  # what `airflow standalone` forces
    return env


def components(env: dict[str, str]) -> dict[str, list[str]]:
    return {
        "api-server": ["api-server", "--host", env["AIRFLOW__API__HOST"], "--port", env["AIRFLOW__API__PORT"]],
        "scheduler": ["scheduler", "--skip-serve-logs"],  # its log server would bind every interface
        "dag-processor": ["dag-processor"],
        "triggerer": ["triggerer", "--skip-serve-logs"],
    }


# -- the banner ------------------------------------------------------------------------------------------
def users(env: dict[str, str], passwords: dict[str, str]) -> list[tuple[str, str, str]]:
    """(user, role, password) of each configured user; the password file names the rest."""
    configured = [u.strip().split(":") for u in env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "").split(",")
                  if u.strip()]
    found = [(u[0], u[1] if len(u) > 1 else "", passwords.get(u[0], "?")) for u in configured]
    names = {u for u, _, _ in found}
    return found + [(name, "", pw) for name, pw in passwords.items() if name not in names]


def banner(url: str, host: str, logins: Sequence[tuple[str, str, str]], logs: Path, slots: str,
           names: Iterable[str], emulator_url: str | None, databases: str = "") -> str:
    width = max([len(u) for u, _, _ in logins] + [5])
    lines = ["", f"chart-sync is running: {url}" + ("" if _loopback(host) == host else f"  (listening on {host})")]
    for i, (user, role, password) in enumerate(logins):
        about = f"  ({role}{', read-only' if role == 'viewer' else ''})" if role else ""
        lines.append(f"  {'login' if i == 0 else '':<7} {user:<{width}}  password {password}{about}")
    if not logins:
        lines.append("  login   none needed (simple_auth_manager_all_admins)")
    lines.append(f"  logs    {logs}/  ({', '.join(f'{n}.log' for n in names)}, {RUN_LOG}; tasks: dag_id=*/)")
    lines.append(f"  Airflow LocalExecutor, {slots} task slots"
                 + (f"; Soundcharts emulator on {emulator_url}" if emulator_url else "; the real Soundcharts API"))
    if databases:
        lines.append(f"  data    {databases}")
    lines.append("  stop    Ctrl-C")
    return "\n".join(lines) + "\n"


def _passwords(env: dict[str, str]) -> dict[str, str]:
    file = Path(env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
                or settings.airflow_home() / "simple_auth_manager_passwords.json.generated")
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError):
        return {}


def _all_admins(env: dict[str, str]) -> bool:
    return env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "").strip().lower() == "true"


# -- main ------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chartsync.demo", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emulator-port", type=int, default=8899,
                        help="the Soundcharts emulator's port on 127.0.0.1 (default: %(default)s)")
    parser.add_argument("--no-seed", action="store_true", help="do not import charts or add demo schedules")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bin_dir = Path(sys.executable).parent
    cores = cpu_count()
    try:
        env = airflow_env({**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}, cores)
    except ValueError as exc:
        warn(str(exc))
        return 2
    port = int(env["AIRFLOW__API__PORT"])
    url = _url(env["AIRFLOW__API__HOST"], port)
    logs = settings.airflow_home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if _port_taken(_loopback(env["AIRFLOW__API__HOST"]), port):
        warn(f"port {port} is in use (another Airflow?); stop it or choose one with AIRFLOW__API__PORT=...")
        return 1

    signals = Signals()
    signals.install()
    emulator = None
    if settings.soundcharts_credentials() is None:
        # deferred: start-up cost, paid only by a run without real credentials. The emulator is
        # served from a thread of this process: one process fewer than a separate emulator
        from soundcharts_emulator.server import start_server

        try:
            emulator = start_server("127.0.0.1", args.emulator_port)
        except OSError as exc:
            warn(f"cannot start the Soundcharts emulator on 127.0.0.1:{args.emulator_port} ({exc}); "
                 "choose another port: make run EMULATOR_PORT=...")
            return 1
        env["AIRFLOW_CONN_SOUNDCHARTS_DEFAULT"] = json.dumps(
            {"conn_type": "http", "host": emulator.url, "login": "soundcharts", "password": "soundcharts"})
    else:
        env["AIRFLOW_CONN_SOUNDCHARTS_DEFAULT"] = json.dumps(settings.soundcharts_credentials())

    database = localdb.Session(env)
    try:
        database.__enter__()  # the project's PostgreSQL, unless both DBs are named (stopped last, below)
    except localdb.LocalDbError as exc:
        warn(f"{exc}\n(the server log: {database.server.log if database.server else '-'})")
        if emulator is not None:
            emulator.shutdown()
        return 1
    env = database.env
    run = Run(bin_dir, env, logs, signals)
    commands = components(env)
    stop_started = None
    try:
        run.write_connections(LIVE_CONNECTIONS)
        if not args.no_seed:
            demo_data.seed(run.call)
        run.start(commands)
        deadline = time.monotonic() + START_TIMEOUT
        while not run.healthy(url):
            signals.check()
            if (name := run.exited()) is not None:
                run.report_exit(name, "during start-up")
                return 1
            if time.monotonic() > deadline:
                warn(f"Airflow did not become healthy in {START_TIMEOUT:.0f} s; see the logs in {logs}/")
                return 1
            time.sleep(1)
        logins = [] if _all_admins(env) else users(env, _passwords(env))
        print(banner(url, env["AIRFLOW__API__HOST"], logins, logs, env["AIRFLOW__CORE__PARALLELISM"], commands,
                     emulator.url if emulator else None, database.describe()), flush=True)
        liveness, looked = Liveness(), 0.0
        while True:
            signals.check()
            run.reap()
            if (name := run.exited()) is not None:
                if not run.restart(name):
                    run.report_exit(name, f"{MAX_RESTARTS} times in {RESTART_WINDOW / 60:.0f} min; stopping the rest")
                    return 1
                liveness.reset()  # a new scheduler is unhealthy until its first heartbeat
            if time.monotonic() - looked >= LIVENESS_EVERY:
                looked = time.monotonic()
                if liveness.wedged(health(url), looked):
                    liveness.reset()
                    if not run.restart("scheduler", f"runs but has reported unhealthy for {WEDGED_AFTER:.0f} s"):
                        run.report_exit("scheduler", f"{MAX_RESTARTS} times in {RESTART_WINDOW / 60:.0f} min; "
                                                     "stopping the rest")
                        return 1
            time.sleep(0.5)
    except Stopped:
        stop_started = signals.first_at or time.monotonic()
        print("chart-sync: stopping (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
        return 0
    except RuntimeError as exc:
        warn(str(exc))
        return 1
    finally:
        took = run.stop(stop_started or time.monotonic())
        if emulator is not None:
            emulator.shutdown()
        database.__exit__(None, None, None)  # PostgreSQL last: the tasks' final reports are in
        took = time.monotonic() - (stop_started or time.monotonic())
        if stop_started is not None:
            print(f"chart-sync: stopped in {took:.1f} s", file=sys.stderr, flush=True)


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


if __name__ == "__main__":
    sys.exit(main())