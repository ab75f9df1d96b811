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
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

import psutil

from chartsync import localdb, settings
from chartsync.seam import airflow_settings

DEMO_SCHEDULES = (  # one daily, one weekly, one monthly chart, each with a year of history
    ("spotify-top-200-global-daily", "daily"),
    ("spotify-top-200-global-weekly", "weekly"),
    ("apple-music-top-200-us-monthly", "monthly"),
)
PLATFORMS = ("spotify", "apple-music", "shazam", "deezer")
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
MAX_SLOTS = 8  # the default parallelism's ceiling, however many cores
START_TIMEOUT = 300.0  # seconds for every component to report healthy (2 shared cores: be patient)
STOP_GRACE = 10.0  # seconds the tasks running at a stop get to finish and report
TRIGGERER_GRACE = 2.0  # seconds before the triggerer is told a second time (Airflow's "force")
STOP_DEADLINE = 15.0  # seconds after the stop signal when whatever is left gets SIGKILL (promise: 20, PostgreSQL after)
MAX_RESTARTS, RESTART_WINDOW = 5, 600.0  # an exited component is restarted, up to 5 times in 10 minutes
RESTART_DELAY = 3.0  # seconds before a restart (the metadata DB may still be coming back)
REMAINS_GRACE = 3.0  # seconds what is left of an exited component gets after SIGTERM, before SIGKILL
LIVE_CONNECTIONS = (settings.CHART_DB_CONN_ID, settings.SOUNDCHARTS_CONN_ID)  # set here through AIRFLOW_CONN_*
RUN_LOG = "chartsync-run.log"  # the seeding commands' output and the start/stop events
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


class _Stopped(Exception):
    """A stop signal (Ctrl-C, SIGTERM, SIGHUP) arrived."""


class _Signals:
    """Counts SIGINT/SIGTERM instead of raising where they land; the loops below look at it."""

    def __init__(self) -> None:
        self.count = 0
        self.first_at: float | None = None  # time.monotonic() of the first one: the stop's clock starts there

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal closed
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.count += 1
        if self.first_at is None:
            self.first_at = time.monotonic()

    def check(self) -> None:
        if self.count:
            raise _Stopped


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


# -- processes -------------------------------------------------------------------------------------------
def _tail(file: Path, lines: int = 15) -> str:
    try:
        text = file.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def _warn(message: str) -> None:
    print(f"chart-sync: {message}", file=sys.stderr, flush=True)


def _stamp(log, message: str) -> None:
    log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n".encode())
    log.flush()


class Run:
    """The processes of one ``make run``: each Airflow component in its own session (so a Ctrl-C at
    the terminal reaches only this process, which stops them in order).

    Created once the databases are up: from then on this process is the subreaper of what it starts
    (PostgreSQL, started before, is not its child), so an orphan is re-parented here, not to init.
    """

    def __init__(self, bin_dir: Path, env: dict[str, str], logs: Path, signals: _Signals) -> None:
        self.bin_dir, self.env, self.logs, self.signals = bin_dir, env, logs, signals
        self.procs: dict[str, subprocess.Popen] = {}
        self.run_log = open(logs / RUN_LOG, "ab")  # noqa: SIM115 (open for the whole run)
        _become_subreaper()

    def call(self, *args: str) -> str:
        """Run a chartsync or airflow command to the end (its output to the run log); stop on a signal."""
        _stamp(self.run_log, " ".join(args))
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen([str(self.bin_dir / args[0]), *args[1:]], env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=_die_with_parent)
            try:
                while proc.poll() is None:
                    self.signals.check()
                    time.sleep(0.1)
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
            out.seek(0)
            output = out.read()
        self.run_log.write(output)
        self.run_log.flush()
        if proc.returncode != 0:
            raise RuntimeError(f"`{' '.join(args)}` exited {proc.returncode}:\n"
                               + "\n".join("    " + line for line in output.decode(errors="replace").splitlines()[-15:]))
        return output.decode(errors="replace")

    def write_connections(self, conn_ids: Iterable[str]) -> None:
        """The connections set here through AIRFLOW_CONN_* (they win at run time) written to the metadata
        DB too, for Airflow's Connections page to show what runs; the password never leaves the file."""
        live = airflow_settings.from_environment(self.env, conn_ids)
        if live:
            with tempfile.TemporaryDirectory() as folder:  # 0700: the file holds passwords
                file = airflow_settings.import_file(Path(folder), "connections", live)
                self.call("airflow", *airflow_settings.IMPORT_COMMANDS["connections"], str(file))

    def start(self, commands: dict[str, list[str]]) -> None:
        self.commands = dict(commands)
        self.restarts: dict[str, list[float]] = {name: [] for name in commands}
        for name in commands:
            self._spawn(name)
        _stamp(self.run_log, "started " + ", ".join(f"{n} (pid {p.pid})" for n, p in self.procs.items()))

    def _spawn(self, name: str) -> None:
        args = self.commands[name]
        with open(self.logs / f"{name}.log", "ab") as log:
            _stamp(log, f"airflow {' '.join(args)}")
            self.procs[name] = subprocess.Popen([str(self.bin_dir / "airflow"), *args], env=self.env,
                                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True, preexec_fn=_die_with_parent)

    def restart(self, name: str) -> bool:
        """Start an exited component again, as a process manager would (the scheduler and the
        dag-processor exit when the metadata DB goes away for a moment). False once it has exited
        ``MAX_RESTARTS`` times within ``RESTART_WINDOW`` seconds: then it is not a blip."""
        now = time.monotonic()
        recent = [t for t in self.restarts[name] if now - t < RESTART_WINDOW]
        if len(recent) >= MAX_RESTARTS:
            return False
        self.restarts[name] = [*recent, now]
        code = self.procs[name].returncode
        _warn(f"the {name} exited (code {code}); restarting it ({len(recent) + 1} of {MAX_RESTARTS} restarts "
              f"allowed in {RESTART_WINDOW / 60:.0f} min; see {self.logs / f'{name}.log'})")
        killed = self.clear_remains(self.procs[name].pid)  # its own session: the group's id is its pid
        _stamp(self.run_log, f"{name} exited (code {code}); restarting"
               + (f" (killed what was left of it: {', '.join(killed)})" if killed else ""))
        time.sleep(max(0.0, now + RESTART_DELAY - time.monotonic()))
        self._spawn(name)
        return True

    def clear_remains(self, group: int) -> list[str]:
        """Stop what is left of an exited component's process group, and what those processes started:
        the LocalExecutor's workers of a scheduler killed with SIGKILL ignore SIGTERM and wait forever
        on a queue nobody feeds. SIGTERM, then SIGKILL after ``REMAINS_GRACE``. Says what it stopped."""
        remains = {q.pid: q for p in self.tree() if _pgid(p) == group for q in [p, *_descendants(p)]}
        if not remains:
            return []
        named = [f"{p.pid} {' '.join(_cmdline(p))[:60].strip()}" for p in remains.values()]
        for p in remains.values():
            _send(p, signal.SIGTERM)
        _, left = psutil.wait_procs(list(remains.values()), timeout=REMAINS_GRACE)  # reaps: they are ours now
        for p in left:
            _send(p, signal.SIGKILL)
        psutil.wait_procs(left, timeout=3)
        return named

    def reap(self) -> None:
        """Collect the exit status of orphans re-parented here (the components' own are left to Popen)."""
        mine = {proc.pid for proc in self.procs.values()}
        for p in _children(os.getpid()):
            if p.pid not in mine and not _alive(p):
                try:
                    os.waitpid(p.pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def exited(self) -> str | None:
        """The first component that is no longer running, if any."""
        return next((name for name, proc in self.procs.items() if proc.poll() is not None), None)

    def report_exit(self, name: str, when: str) -> None:
        log = self.logs / f"{name}.log"
        _warn(f"the {name} exited (code {self.procs[name].returncode}) {when}; the end of {log}:\n{_tail(log)}")

    def healthy(self, url: str) -> bool:
        """The api-server answers and reports the scheduler, dag-processor and triggerer healthy."""
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as answer:
                health = json.load(answer)
        except (OSError, ValueError):
            return False
        return all((health.get(part) or {}).get("status") == "healthy"
                   for part in ("metadatabase", "scheduler", "dag_processor", "triggerer"))

    def tree(self) -> list[psutil.Process]:
        try:
            return psutil.Process().children(recursive=True)
        except psutil.Error:
            return []

    def _signal_group(self, proc: subprocess.Popen, signum: int) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self, started: float) -> float:
        """Stop every process started here by ``started + STOP_DEADLINE`` (a second signal: at once).

        The scheduler goes first: on SIGTERM it stops scheduling and its LocalExecutor waits for the
        tasks already running, which still need the api-server to report. Its workers would go on
        with the tasks already queued to them, so an idle worker, or one that starts a new task, is
        killed (those tasks are still queued or just started: the next scheduler resets them). The
        dag-processor and the triggerer stop meanwhile (the triggerer is told twice if it lingers).
        Once the scheduler is gone, or after ``STOP_GRACE``, every component's process group gets
        SIGTERM (the task supervisors pass it on to their tasks), and at the deadline whatever is
        left of the whole tree gets SIGKILL (tasks and trigger runners run in their own process
        groups, so the tree is tracked, not only the groups; orphans are in it, this process being
        their subreaper). What is left of a component that exited and was not started again goes first.
        """
        _stamp(self.run_log, "stopping")
        for proc in self.procs.values():
            if proc.poll() is not None:  # exited, not started again (it exited too often, or during start-up)
                self.clear_remains(proc.pid)
        seen: dict[int, psutil.Process] = {}

        def alive() -> list[psutil.Process]:
            seen.update((p.pid, p) for p in self.tree())
            return [p for p in seen.values() if _alive(p)]

        def interrupted() -> bool:
            return self.signals.count > signals_at_stop

        signals_at_stop = self.signals.count
        forced: set[str] = set()  # components told twice already (a third time would restart their wait)
        alive()
        scheduler = self.procs.get("scheduler")
        if scheduler is not None and scheduler.poll() is None:
            running = {task.pid for worker in _children(scheduler.pid) for task in _children(worker.pid)}
            scheduler.send_signal(signal.SIGTERM)
            for name in ("dag-processor", "triggerer"):  # and their subprocesses (own process groups)
                if name in self.procs:
                    for p in _with_children(self.procs[name].pid):
                        _send(p, signal.SIGTERM)
            triggerer = self.procs.get("triggerer")
            while scheduler.poll() is None and time.monotonic() < started + STOP_GRACE and not interrupted():
                if triggerer is not None and time.monotonic() > started + TRIGGERER_GRACE:
                    # its trigger runner sometimes waits for the escalation; a second signal is
                    # Airflow's own "force": it kills the runner and exits
                    if triggerer.poll() is None:
                        triggerer.send_signal(signal.SIGTERM)
                        forced.add("triggerer")
                    triggerer = None
                for worker in _children(scheduler.pid):
                    tasks = _children(worker.pid)
                    if any(task.pid in running for task in tasks):
                        continue  # let the task it ran at the stop finish
                    if tasks or "<idle>" in " ".join(_cmdline(worker)):
                        for p in (worker, *tasks):
                            _send(p, signal.SIGKILL)
                alive()
                time.sleep(0.1)
            _stamp(self.run_log, f"scheduler {'stopped' if scheduler.poll() is not None else 'still running'} "
                   f"after {time.monotonic() - started:.1f} s")
        for name, proc in self.procs.items():
            if name not in forced:
                self._signal_group(proc, signal.SIGTERM)
        while alive() and time.monotonic() < started + STOP_DEADLINE and not interrupted():
            for proc in self.procs.values():
                proc.poll()  # reap
            time.sleep(0.1)
        left = alive()
        for p in left:
            _send(p, signal.SIGKILL)
        for proc in self.procs.values():
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                pass
        psutil.wait_procs(left, timeout=3)
        took = time.monotonic() - started
        _stamp(self.run_log, f"stopped in {took:.1f} s"
               + (f" ({len(left)} killed at the deadline: {', '.join(str(p.pid) for p in left)})" if left else ""))
        self.run_log.close()
        return took


_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER = 1, 36  # <linux/prctl.h>
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None  # libc's
if _prctl is not None:
    _prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _become_subreaper() -> None:
    """Orphans of our descendants are re-parented to this process instead of init (Linux; else nothing)."""
    if _prctl is not None and _prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        _warn(f"cannot become the processes' subreaper ({os.strerror(ctypes.get_errno())}); a component killed "
              "with SIGKILL may leave processes behind")


def _die_with_parent() -> None:
    """In a child before its exec: SIGTERM when this process dies (a SIGKILL, a crash), the graceful stop
    every component knows. Runs between fork and exec: one C call, nothing that could take a lock. (The
    signal follows the thread that forks: the main thread, which lives as long as this process.)"""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _pgid(p: psutil.Process) -> int | None:
    try:
        return os.getpgid(p.pid)
    except OSError:
        return None


def _descendants(p: psutil.Process) -> list[psutil.Process]:
    try:
        return p.children(recursive=True)
    except psutil.Error:
        return []


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children()
    except psutil.Error:
        return []


def _with_children(pid: int) -> list[psutil.Process]:
    try:
        process = psutil.Process(pid)
        return [process, *process.children()]
    except psutil.Error:
        return []


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _send(p: psutil.Process, signum: int) -> None:
    try:
        p.send_signal(signum)
    except psutil.Error:
        pass


def _listed_slugs(listing: str) -> set[str]:
    """The chart slugs of `chartsync schedules list` (the second column of its table)."""
    rows = [line.split() for line in listing.splitlines()]
    return {row[1] for row in rows if len(row) > 1 and row[0].isdigit()}


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
        _warn(str(exc))
        return 2
    port = int(env["AIRFLOW__API__PORT"])
    url = _url(env["AIRFLOW__API__HOST"], port)
    logs = settings.airflow_home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if _port_taken(_loopback(env["AIRFLOW__API__HOST"]), port):
        _warn(f"port {port} is in use (another Airflow?); stop it or choose one with AIRFLOW__API__PORT=...")
        return 1

    signals = _Signals()
    signals.install()
    emulator = None
    if settings.soundcharts_credentials() is None:
        # deferred: start-up cost, paid only by a run without real credentials. The emulator is
        # served from a thread of this process: one process fewer than a separate emulator
        from soundcharts_emulator.server import start_server

        try:
            emulator = start_server("127.0.0.1", args.emulator_port)
        except OSError as exc:
            _warn(f"cannot start the Soundcharts emulator on 127.0.0.1:{args.emulator_port} ({exc}); "
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
        _warn(f"{exc}\n(the server log: {database.server.log if database.server else '-'})")
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
            run.call("chartsync", "charts", "import", *[a for p in PLATFORMS for a in ("--platform", p)])
            existing = _listed_slugs(run.call("chartsync", "schedules", "list"))
            for slug, frequency in DEMO_SCHEDULES:
                if slug not in existing:  # a second start resumes: no duplicate schedule
                    run.call("chartsync", "schedules", "add", slug, "--frequency", frequency)
        run.start(commands)
        deadline = time.monotonic() + START_TIMEOUT
        while not run.healthy(url):
            signals.check()
            if (name := run.exited()) is not None:
                run.report_exit(name, "during start-up")
                return 1
            if time.monotonic() > deadline:
                _warn(f"Airflow did not become healthy in {START_TIMEOUT:.0f} s; see the logs in {logs}/")
                return 1
            time.sleep(1)
        logins = [] if _all_admins(env) else users(env, _passwords(env))
        print(banner(url, env["AIRFLOW__API__HOST"], logins, logs, env["AIRFLOW__CORE__PARALLELISM"], commands,
                     emulator.url if emulator else None, database.describe()), flush=True)
        while True:
            signals.check()
            run.reap()
            if (name := run.exited()) is not None and not run.restart(name):
                run.report_exit(name, f"{MAX_RESTARTS} times in {RESTART_WINDOW / 60:.0f} min; stopping the rest")
                return 1
            time.sleep(0.5)
    except _Stopped:
        stop_started = signals.first_at or time.monotonic()
        print("chart-sync: stopping (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
        return 0
    except RuntimeError as exc:
        _warn(str(exc))
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
