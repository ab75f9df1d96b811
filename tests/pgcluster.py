"""A PostgreSQL server for tests and benchmarks: the one CI started (CHARTSYNC_TEST_POSTGRES =
host:port:user:password) or a throw-away cluster from Debian's binaries in a temp dir."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str
    process: subprocess.Popen | None = None
    data_dir: Path | None = None

    def create_database(self, name: str) -> str:
        import psycopg2

        admin = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                 dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cur.execute(f'CREATE DATABASE "{name}"')
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

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres() -> Postgres:
    given = os.environ.get("CHARTSYNC_TEST_POSTGRES")
    if given:
        host, port, user, password = given.split(":", 3)
        return Postgres(host, int(port), user, password)
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (or set CHARTSYNC_TEST_POSTGRES)")
    bindir = Path(bins[-1]).parent
    data = Path(tempfile.mkdtemp(prefix="chartsync-pg-"))  # outside 0700 dirs: the postgres user must reach it
    as_user: list[str] = []
    pwfile = data / "pw"
    pwfile.write_text("chartsync\n")
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(data, "postgres")
        shutil.chown(pwfile, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data / "db"), "-U", "chartsync",
                    "--pwfile", str(pwfile), "-A", "md5"], check=True, capture_output=True)
    port = _free_port()
    proc = subprocess.Popen([*as_user, str(bindir / "postgres"), "-D", str(data / "db"), "-p", str(port),
                             "-k", str(data), "-h", "127.0.0.1", "-c", "fsync=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pg = Postgres("127.0.0.1", port, "chartsync", "chartsync", proc, data)
    deadline = time.monotonic() + 30
    while not pg.ready():
        if time.monotonic() > deadline:
            pg.stop()
            raise TimeoutError("PostgreSQL did not start within 30 s")
        time.sleep(0.3)
    return pg
