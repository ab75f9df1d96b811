"""``make run``'s supervisor: the processes it starts, restarts when they exit, and stops.

Each Airflow component runs in its own session (so a Ctrl-C at the terminal reaches only the
supervisor, which stops them in order), its output in $AIRFLOW_HOME/logs/<component>.log. On Linux
the supervisor is the subreaper of everything it starts, so the workers of a component killed with
SIGKILL stay in its tree (and are killed before that component is started again), and each
component gets SIGTERM should the supervisor die.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import psutil

from chartsync.seam import airflow_settings

STOP_GRACE = 10.0  # seconds the tasks running at a stop get to finish and report
TRIGGERER_GRACE = 2.0  # seconds before the triggerer is told a second time (Airflow's "force")
STOP_DEADLINE = 15.0  # seconds after the stop signal when whatever is left gets SIGKILL (promise: 20, PostgreSQL after)
MAX_RESTARTS, RESTART_WINDOW = 5, 600.0  # an exited component is restarted, up to 5 times in 10 minutes
RESTART_DELAY = 3.0  # seconds before a restart (the metadata DB may still be coming back)
REMAINS_GRACE = 3.0  # seconds what is left of an exited component gets after SIGTERM, before SIGKILL
RUN_LOG = "chartsync-run.log"  # the seeding commands' output and the start/stop events
WEDGED_AFTER = 60.0  # seconds the scheduler may report unhealthy while it runs before it is restarted
LIVENESS_EVERY = 5.0  # seconds between two looks at the scheduler's health


def health(url: str) -> dict | None:
    """The api-server's ``/api/v2/monitor/health`` answer; None when it does not answer (it, or the metadata
    DB behind it, is away)."""
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as answer:
            return json.load(answer)
    except (OSError, ValueError):
        return None


class Liveness:
    """Tells a scheduler that runs but no longer works, as a Kubernetes liveness probe does. After a fatal
    error in its loop (a metadata DB restart can cause one), Airflow 3.3.2's scheduler shuts its
    LocalExecutor down and can hang there for good, alive and no longer heartbeating
    (apache/airflow#67870, fixed for 3.4 by apache/airflow#67881): a restart on exit never comes.
    ``wedged`` is True once the api-server has reported the scheduler unhealthy for ``after`` seconds
    running; an api-server that does not answer proves nothing either way."""

    def __init__(self, after: float = WEDGED_AFTER) -> None:
        self.after = after
        self.since: float | None = None

    def wedged(self, answer: dict | None, now: float) -> bool:
        if answer is None:
            return False
        if (answer.get("scheduler") or {}).get("status") == "healthy":
            self.since = None
            return False
        if self.since is None:
            self.since = now
        return now - self.since >= self.after

    def reset(self) -> None:
        self.since = None


class Stopped(Exception):
    """A stop signal (Ctrl-C, SIGTERM, SIGHUP) arrived."""


class Signals:
    """Counts SIGINT/SIGTERM instead of raising where they land; the waiting loops look at it."""

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
            raise Stopped


def _tail(file: Path, lines: int = 15) -> str:
    try:
        text = file.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def warn(message: str) -> None:
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

    def __init__(self, bin_dir: Path, env: dict[str, str], logs: Path, signals: Signals) -> None:
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

    def restart(self, name: str, why: str | None = None) -> bool:
        """Start an exited component again, as a process manager would (the scheduler and the
        dag-processor exit when the metadata DB goes away for a moment), or one that runs but is ``why``
        no longer working (its process group is stopped first). False once it has been restarted
        ``MAX_RESTARTS`` times within ``RESTART_WINDOW`` seconds: then it is not a blip."""
        now = time.monotonic()
        recent = [t for t in self.restarts[name] if now - t < RESTART_WINDOW]
        if len(recent) >= MAX_RESTARTS:
            return False
        self.restarts[name] = [*recent, now]
        what = why or f"exited (code {self.procs[name].returncode})"
        warn(f"the {name} {what}; restarting it ({len(recent) + 1} of {MAX_RESTARTS} restarts "
             f"allowed in {RESTART_WINDOW / 60:.0f} min; see {self.logs / f'{name}.log'})")
        killed = self.clear_remains(self.procs[name].pid)  # its own session: the group's id is its pid
        self.procs[name].poll()
        _stamp(self.run_log, f"{name} {what}; restarting"
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
        warn(f"the {name} exited (code {self.procs[name].returncode}) {when}; the end of {log}:\n{_tail(log)}")

    def healthy(self, url: str) -> bool:
        """The api-server answers and reports the scheduler, dag-processor and triggerer healthy."""
        answer = health(url)
        return answer is not None and all((answer.get(part) or {}).get("status") == "healthy"
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
        warn(f"cannot become the processes' subreaper ({os.strerror(ctypes.get_errno())}); a component killed "
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
