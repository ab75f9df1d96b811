"""``make run`` as a user meets it: the banner, loopback only, a bounded process tree, its PostgreSQL
restarted under load (what exits is started again), a clean stop on SIGTERM and on Ctrl-C (SIGINT),
a second start that resumes without duplicating the demo, and a scheduler killed with SIGKILL whose
LocalExecutor workers do not outlive the stop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from sqlalchemy import create_engine, text

from chartsync import localdb, settings
from chartsync.demo import airflow_env, cpu_count, parallelism
from chartsync.cli.output import print_as
from chartsync.demo_data import DEMO_SCHEDULES, _listed_slugs
from stacks import BIN, ROOT, free_port, wait_for

pytestmark = pytest.mark.integration

START_TIMEOUT = 360  # two shared cores, other suites running: be generous
STOP_PROMISE = 20  # seconds: every process started by make run is gone
MAX_PROCESSES = 12  # PostgreSQL's aside
MAX_RSS = 3 * 2**30
SAMPLE_SECONDS = 25  # the tree is sampled while the demo's catchup runs


class Product:
    """One ``python -m chartsync.demo`` (what ``make run`` runs), its output and its process tree."""

    def __init__(self, env: dict[str, str]) -> None:
        self.out: list[str] = []
        self.err: list[str] = []
        self.emulator_port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chartsync.demo", "--emulator-port", str(self.emulator_port)], env=env, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.root = psutil.Process(self.proc.pid)
        self.seen: dict[int, psutil.Process] = {}
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=lambda s=stream, ls=lines: ls.extend(iter(s.readline, "")), daemon=True).start()

    def banner(self) -> str:
        def shown():
            if self.proc.poll() is not None:
                raise AssertionError(f"make run exited {self.proc.returncode} before its banner:\n"
                                     f"{''.join(self.out)}\n{''.join(self.err)}")
            text = "".join(self.out)
            return text if "\n  stop" in text else None

        return wait_for(shown, START_TIMEOUT, "the make run banner", interval=1)

    def tree(self) -> list[psutil.Process]:
        """The product's processes (the demo itself included), PostgreSQL's aside."""
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        self.seen.update((p.pid, p) for p in procs)
        return [p for p in procs if "postgres" not in _name(p)]

    def stop(self, signum: int) -> float:
        """Send ``signum``; the seconds until every process of the tree (as ever seen) is gone."""
        self.tree()
        started = time.monotonic()
        self.proc.send_signal(signum)
        try:
            self.proc.wait(STOP_PROMISE + 10)
        except subprocess.TimeoutExpired:
            pass
        _, alive = psutil.wait_procs(list(self.seen.values()), timeout=max(0.1, started + STOP_PROMISE
                                                                             - time.monotonic()))
        took = time.monotonic() - started
        assert not alive, f"still running {took:.1f} s after {signal.Signals(signum).name}: " + ", ".join(
            f"{p.pid} {' '.join(_cmdline(p))[:80]}" for p in alive)
        return took

    def kill(self) -> None:
        for p in [*self.tree(), *self.seen.values()]:
            try:
                p.kill()
            except psutil.Error:
                pass


def _name(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline()) or p.name()
    except psutil.Error:
        return ""


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _scheduler_healthy(port: int) -> bool:
    try:
        health = requests.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=10).json()
    except (requests.RequestException, ValueError):
        return False
    return health.get("scheduler", {}).get("status") == "healthy"


def _listening(procs: list[psutil.Process]) -> set[tuple[str, int]]:
    found = set()
    for p in procs:
        try:
            found |= {(c.laddr.ip, c.laddr.port) for c in p.net_connections(kind="inet")
                      if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            pass
    return found


def _outside_addresses() -> list[str]:
    return [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family == socket.AF_INET and not a.address.startswith("127.")]


def _answers(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((host, port)) == 0


def _connections_page(port: int, password: str) -> dict[str, dict]:
    """The connections Airflow's UI lists (its REST API), by id, as the admin sees them."""
    url = f"http://127.0.0.1:{port}"
    token = requests.post(f"{url}/auth/token", json={"username": "admin", "password": password},
                          timeout=10).json()["access_token"]
    listing = requests.get(f"{url}/api/v2/connections", params={"limit": 100}, timeout=10,
                           headers={"Authorization": f"Bearer {token}"}).json()
    return {c["connection_id"]: c for c in listing["connections"]}


def _rankings(env: dict[str, str]) -> int:
    """Rankings in make run's chart DB, on the project's PostgreSQL (started for this if it is down)."""
    with localdb.Session(env) as db:
        engine = create_engine(db.server.url(localdb.CHART_DB))
        try:
            with engine.connect() as conn:
                return conn.execute(text("select count(*) from chart_ranking")).scalar_one()
        finally:
            engine.dispose()


def _leftovers(home: Path) -> list[str]:
    """Processes anywhere on the machine that still run with this AIRFLOW_HOME (orphans included)."""
    left = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("AIRFLOW_HOME") == str(home) and p.pid != os.getpid():
                left.append(f"{p.pid} {' '.join(p.cmdline())[:80]}")
        except psutil.Error:
            pass
    return left


def _in_sessions(sessions: set[int]) -> list[str]:
    """Processes anywhere on the machine still in one of these sessions or process groups."""
    left = []
    for p in psutil.process_iter():
        try:
            if {os.getsid(p.pid), os.getpgid(p.pid)} & sessions and p.pid != os.getpid():
                left.append(f"{p.pid} {' '.join(p.cmdline())[:80]}")
        except (OSError, psutil.Error):
            pass
    return left


def _component(product: Product, name: str) -> psutil.Process | None:
    """The running ``airflow <name>`` make run started (its direct child)."""
    for p in product.root.children():
        args = _cmdline(p)
        if name in args and "airflow" in " ".join(args):
            return p
    return None


def _workers(scheduler: psutil.Process) -> list[psutil.Process]:
    """The scheduler's LocalExecutor workers (their process title names the executor)."""
    try:
        return [p for p in scheduler.children() if "LocalExecutor" in " ".join(_cmdline(p))]
    except psutil.Error:
        return []


@pytest.fixture(scope="module")
def make_run_env() -> Iterator[dict[str, str]]:
    """The environment the Makefile gives ``make run``, a private AIRFLOW_HOME, ``make setup`` done once for
    the module's starts of the product (each test starts and stops its own; a later one finds the home as a
    user's second day does: set up, with data). The home
    is outside pytest's temp root, which pytest closes (0700) whenever a session starts: as root, PostgreSQL
    runs as another user, which must reach its data."""
    home = Path(tempfile.mkdtemp(prefix="chartsync-make-run-")) / "airflow"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "CHARTSYNC_", "SOUNDCHARTS_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__API__PORT": str(free_port()),
        settings.PG_PORT_ENV: str(free_port()),
        "PYTHONPATH": str(ROOT / "include"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    done = subprocess.run(["make", "--no-print-directory", "setup"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, f"make setup:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert not localdb.home_server(env).running(), "make setup left its PostgreSQL running"
    yield env
    localdb.home_server(env).stop()
    shutil.rmtree(home.parent, ignore_errors=True)


def test_make_run_banner_bounded_tree_clean_stop_and_resume(make_run_env):
    env = make_run_env
    home, port = Path(env["AIRFLOW_HOME"]), int(env["AIRFLOW__API__PORT"])
    products: list[Product] = []
    try:
        # -- first start: the banner and nothing else on the console ----------------------------------------
        t0 = time.monotonic()
        first = Product(env)
        products.append(first)
        banner = first.banner()
        started_in = time.monotonic() - t0
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        assert f"http://127.0.0.1:{port}" in banner
        for user in ("admin", "viewer"):
            assert user in banner and passwords[user] in banner, banner
        assert str(home / "logs") in banner
        assert banner.lstrip().startswith("chart-sync is running"), f"console output before the banner:\n{banner}"
        assert len(banner.strip().splitlines()) <= 10, banner
        server = localdb.home_server(env)
        assert f"PostgreSQL 127.0.0.1:{server.port}/airflow" in banner, banner  # which DBs are in use
        assert f"PostgreSQL 127.0.0.1:{server.port}/chartsync" in banner, banner
        assert server.password not in banner
        assert (home / "postgres" / "data" / "PG_VERSION").exists()  # data under $AIRFLOW_HOME
        assert not "".join(first.err).strip(), f"warnings on a clean start: {''.join(first.err)}"
        for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
            assert (home / "logs" / f"{name}.log").stat().st_size > 0, f"no {name}.log"

        # -- the Connections page shows the connections the tasks use (AIRFLOW_CONN_* of make run) ---------
        shown = _connections_page(port, passwords["admin"])
        chart_db, soundcharts = shown["chart_db"], shown["soundcharts_default"]
        assert (chart_db["conn_type"], chart_db["host"], chart_db["port"], chart_db["schema"], chart_db["login"]) \
            == ("postgres", "127.0.0.1", server.port, localdb.CHART_DB, localdb.ROLE), chart_db
        assert soundcharts["host"] == f"http://127.0.0.1:{first.emulator_port}", soundcharts
        assert server.password not in json.dumps(shown)
        for log in (home / "logs").rglob("*.log"):  # written to the metadata DB, never to a log
            assert server.password not in log.read_text(errors="replace"), log

        # -- loopback only --------------------------------------------------------------------------------
        health = requests.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=10)
        assert health.status_code == 200 and health.json()["scheduler"]["status"] == "healthy"
        listening = _listening(first.tree())
        assert ("127.0.0.1", port) in listening
        assert {ip for ip, _ in listening} == {"127.0.0.1"}, listening
        for address in _outside_addresses():
            assert not _answers(address, port), f"the api-server answers on {address}"

        # -- sized for the machine, while the demo's catchup runs ----------------------------------------------
        most, most_rss, at_most = 0, 0, []
        deadline = time.monotonic() + SAMPLE_SECONDS
        while time.monotonic() < deadline:
            procs, rss = first.tree(), 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            if len(procs) > most:
                most, at_most = len(procs), [" ".join(_cmdline(p))[:70] for p in procs]
            most_rss = max(most_rss, rss)
            time.sleep(0.5)
        print(f"\nmake run: banner after {started_in:.0f} s; at most {most} processes, "
              f"{most_rss / 2**30:.2f} GiB resident", flush=True)
        assert most <= MAX_PROCESSES, "\n".join(at_most)
        assert most_rss <= MAX_RSS
        assert wait_for(lambda: _rankings(env) > 0, 120, "the demo's first rankings", interval=2)

        # -- the metadata DB restarted under load: the components that exit are started again ----------
        before = _rankings(env)
        server.stop()
        time.sleep(3)
        server.start()
        wait_for(lambda: "restarting it" in "".join(first.err), 120, "make run to restart what exited", interval=1)
        assert first.proc.poll() is None, "".join(first.err)
        wait_for(lambda: _scheduler_healthy(port), 180, "the scheduler to be healthy again", interval=2)
        wait_for(lambda: _rankings(env) > before, 240, "the catchup to go on after the DB restart", interval=2)

        # -- SIGTERM stops everything within 20 s ----------------------------------------------------------
        took = first.stop(signal.SIGTERM)
        print(f"make run: stopped {took:.1f} s after SIGTERM", flush=True)
        assert first.proc.returncode == 0, "".join(first.err)
        assert not _leftovers(home)  # PostgreSQL's processes included: they run with this AIRFLOW_HOME too
        assert not server.running()
        stored = _rankings(env)  # the data survived the stop

        # -- a second start resumes: no duplicate demo schedule, the catchup goes on ------------------------
        second = Product(env)
        products.append(second)
        assert f"http://127.0.0.1:{port}" in second.banner()
        listing = subprocess.run([str(BIN / "chartsync"), "schedules", "list", "-o", "json"], capture_output=True,
                                 text=True, env=localdb.apply(server, env), timeout=120).stdout
        slugs = [row["chart"] for row in json.loads(listing)]
        for slug, _ in DEMO_SCHEDULES:
            assert slugs.count(slug) == 1, listing
        assert len(slugs) == len(DEMO_SCHEDULES), listing
        wait_for(lambda: _rankings(env) > stored, 180, "the catchup to go on after the restart", interval=2)

        # -- Ctrl-C (SIGINT) stops everything within 20 s too -------------------------------------------------
        took = second.stop(signal.SIGINT)
        print(f"make run: stopped {took:.1f} s after SIGINT", flush=True)
        assert second.proc.returncode == 0, "".join(second.err)
        assert not _leftovers(home)
        assert not server.running()
    finally:
        for product in products:
            product.kill()


def test_a_killed_scheduler_leaves_nothing_behind_after_the_stop(make_run_env):
    """kill -9 of the scheduler orphans its LocalExecutor workers (they ignore SIGTERM and wait on a queue
    nobody feeds): make run clears them before it starts the scheduler again, and its stop leaves no process
    of the product, those of the restarted scheduler included."""
    env = make_run_env
    home, port = Path(env["AIRFLOW_HOME"]), int(env["AIRFLOW__API__PORT"])
    slots = int(airflow_env(env, cpu_count())["AIRFLOW__CORE__PARALLELISM"])
    product = Product(env)
    try:
        product.banner()
        first = wait_for(lambda: _component(product, "scheduler"), 60, "the scheduler")
        orphans = wait_for(lambda: (w := _workers(first)) and len(w) >= slots and w, 120,
                           f"the scheduler's {slots} LocalExecutor workers", interval=1)
        sessions = {os.getsid(p.pid) for p in product.tree() if p.pid != product.root.pid}  # one a component
        print(f"\nmake run: {len(product.tree())} processes before the kill; scheduler {first.pid}, workers "
              f"{[w.pid for w in orphans]} ({sum(w.memory_info().rss for w in orphans) / 2**20:.0f} MiB)", flush=True)

        first.kill()
        wait_for(lambda: "restarting it" in "".join(product.err), 60, "make run to restart the scheduler", interval=1)
        second = wait_for(lambda: (s := _component(product, "scheduler")) and s.pid != first.pid and s, 60,
                          "the new scheduler")
        wait_for(lambda: len(_workers(second)) >= slots, 180, "the new scheduler's workers", interval=1)
        wait_for(lambda: _scheduler_healthy(port), 180, "the new scheduler to be healthy", interval=2)
        _, alive = psutil.wait_procs(orphans, timeout=10)
        assert not alive, f"the killed scheduler's workers outlived its restart: {[p.pid for p in alive]}"
        sessions |= {os.getsid(p.pid) for p in product.tree() if p.pid != product.root.pid}
        before = len(product.tree())

        took = product.stop(signal.SIGTERM)
        print(f"make run: {before} processes before the stop, stopped {took:.1f} s after SIGTERM; "
              f"left: {len(_leftovers(home))} with its AIRFLOW_HOME, {len(_in_sessions(sessions))} in its sessions",
              flush=True)
        assert product.proc.returncode == 0, "".join(product.err)
        assert not _leftovers(home)
        assert not _in_sessions(sessions)
        assert not localdb.home_server(env).running()
    finally:
        product.kill()


def test_a_second_shell_from_make_env_runs_airflow_and_chartsync_on_the_products_home(make_run_env, tmp_path):
    """README's second shell: `eval "$(make -s env)"` in a shell that has neither the venv nor any Airflow
    variable; then `airflow` and `chartsync` are the venv's, on make run's home, DAGs and databases, and
    nothing is written to ~/airflow."""
    env = make_run_env
    home = tmp_path / "user-home"
    home.mkdir()
    shell_env = {k: v for k, v in os.environ.items()
                 if not k.startswith(("AIRFLOW", "CHARTSYNC_", "VIRTUAL_ENV", "PYTHONPATH", "MAKE"))}
    shell_env.update({
        "HOME": str(home),
        "PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != BIN),
        "AIRFLOW_HOME": env["AIRFLOW_HOME"],  # the user's choices make run was started with
        settings.PG_PORT_ENV: env[settings.PG_PORT_ENV],
    })
    script = ('eval "$(make -s env)" && command -v airflow chartsync && '
              'airflow config get-value core dags_folder && airflow dags list -o json && '
              'chartsync schedules list')
    try:
        done = subprocess.run(["bash", "-c", script], env=shell_env, cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
    finally:
        localdb.home_server(env).stop()  # `make -s env` starts make run's PostgreSQL when it is not running
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    lines = done.stdout.splitlines()
    assert lines[:3] == [str(BIN / "airflow"), str(BIN / "chartsync"), str(ROOT / "dags")]
    dags = json.loads(next(line for line in lines if line.startswith("[")))
    assert isinstance(dags, list)
    assert not (home / "airflow").exists(), "airflow wrote a home of its own in ~/airflow"


# -- the pieces, without starting anything ----------------------------------------------------------------
def test_parallelism_follows_the_cores_unless_told():
    assert [parallelism(cores, {}) for cores in (1, 2, 4, 64)] == [2, 2, 4, 8]
    assert parallelism(2, {settings.PARALLELISM_ENV: "5"}) == 5
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ValueError, match=settings.PARALLELISM_ENV):
            parallelism(2, {settings.PARALLELISM_ENV: bad})


def test_airflow_env_binds_loopback_and_lets_the_user_decide():
    env = airflow_env({"AIRFLOW__API__PORT": "9090"}, cores=2)
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "2"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:9090/execution/"
    assert env["AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES"] == "1"
    assert env["AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT"] == "30"  # Airflow's 5 s fails tries on a busy machine
    mine = airflow_env({settings.HOST_ENV: "0.0.0.0", "AIRFLOW__CORE__PARALLELISM": "7",
                        settings.PARALLELISM_ENV: "3", "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "9"}, cores=2)
    assert mine["AIRFLOW__API__HOST"] == "0.0.0.0"
    assert mine["AIRFLOW__CORE__PARALLELISM"] == "7"  # Airflow's own variable wins
    assert mine["AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT"] == "9"
    assert mine["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8080/execution/"
    assert airflow_env({settings.PARALLELISM_ENV: "3"}, cores=2)["AIRFLOW__CORE__PARALLELISM"] == "3"


def test_listed_slugs_reads_the_schedule_listing(capsys):
    """What the demo reads is what `chartsync schedules list -o json` prints."""
    print_as([{"id": 1, "chart": "spotify-top-200-global-daily", "platform": "spotify", "frequency": "daily"}], "json")
    assert _listed_slugs(capsys.readouterr().out) == {"spotify-top-200-global-daily"}
    print_as([], "json", empty="no sync schedules")
    assert _listed_slugs(capsys.readouterr().out) == set()


def test_help_names_the_knobs():
    done = subprocess.run([sys.executable, "-m", "chartsync.demo", "--help"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT / "include")})
    assert done.returncode == 0
    for knob in (settings.PARALLELISM_ENV, settings.HOST_ENV, "AIRFLOW__API__PORT", "--emulator-port", "logs"):
        assert knob in done.stdout
