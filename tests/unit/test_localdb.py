"""chartsync.localdb: the project's own PostgreSQL (make run, make setup), started for real."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import psycopg2
import pytest

from chartsync import localdb, settings
from stacks import BIN, ROOT, free_port

pytestmark = pytest.mark.server  # starts PostgreSQL servers


def test_named_servers_win_and_sqlite_stays_possible():
    assert localdb.needed({}) == {"metadata": True, "chart": True}
    assert localdb.needed({"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://x@db/af"}) == {
        "metadata": False, "chart": True}
    assert localdb.needed({"AIRFLOW_CONN_CHART_DB": "postgresql://x@db/c"})["chart"] is False
    assert localdb.needed({settings.CHART_DB_ENV: "SQLite"})["chart"] is False


def test_apply_fills_only_what_is_not_named(tmp_path):
    server = localdb.Server(tmp_path / "pg", 5999)
    mine = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://u:secret@db.example.com/af"}
    env = localdb.apply(server, mine)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == mine["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    chart = json.loads(env["AIRFLOW_CONN_CHART_DB"])
    assert (chart["host"], chart["port"], chart["schema"]) == ("127.0.0.1", 5999, localdb.CHART_DB)
    line = localdb.describe(localdb.needed(mine), env, server)
    assert "secret" not in line and server.password not in line  # the banner never shows a password
    assert "db.example.com" in line and f"127.0.0.1:5999/{localdb.CHART_DB}" in line
    pw = (tmp_path / "pg" / "password").stat()
    assert stat.S_IMODE(pw.st_mode) == 0o600


@pytest.fixture
def server():
    root = Path(tempfile.mkdtemp(prefix="chartsync-localdb-"))  # outside pytest's 0700 temp root (as root)
    srv = localdb.Server(root / "postgres", free_port(), ("fsync=off",))
    yield srv
    srv.stop()
    shutil.rmtree(root, ignore_errors=True)


def _connect(srv: localdb.Server, db: str):
    return psycopg2.connect(host="127.0.0.1", port=srv.port, user=localdb.ROLE, password=srv.password, dbname=db,
                            connect_timeout=5)


def test_start_stop_and_the_data_survives(server):
    assert server.start() is True
    assert server.start() is False  # already running: nothing happens
    with _connect(server, localdb.CHART_DB) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE kept (x int)")
        cur.execute("INSERT INTO kept VALUES (42)")
    conn.close()
    with _connect(server, localdb.METADATA_DB):
        pass
    with pytest.raises(psycopg2.OperationalError):  # a password is required
        psycopg2.connect(host="127.0.0.1", port=server.port, user=localdb.ROLE, password="wrong",
                         dbname="postgres", connect_timeout=5)
    server.stop()
    assert not server.running()
    assert server.start() is True  # no second initdb: the same cluster
    with _connect(server, localdb.CHART_DB) as conn, conn.cursor() as cur:
        cur.execute("SELECT x FROM kept")
        assert cur.fetchone() == (42,)
    conn.close()


def test_a_taken_port_is_a_clear_error(server):
    import socket

    with socket.socket() as other:
        other.bind(("127.0.0.1", server.port))
        other.listen()
        with pytest.raises(localdb.LocalDbError, match=f"port {server.port}.*{settings.PG_PORT_ENV}"):
            server.start()


def test_exec_runs_a_command_with_the_databases_and_stops_after(server, monkeypatch, capsys):
    monkeypatch.setenv("AIRFLOW_HOME", str(server.root.parent))
    monkeypatch.setenv(settings.PG_PORT_ENV, str(server.port))
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_CHART_DB", raising=False)
    out = server.root.parent / "seen.txt"
    code = localdb.main(["exec", "--", "sh", "-c",
                         f'echo "$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" > {out}; test -n "$AIRFLOW_CONN_CHART_DB"'])
    assert code == 0
    assert f"@127.0.0.1:{server.port}/{localdb.METADATA_DB}" in out.read_text()
    assert not server.running()  # exec started it, so exec stopped it
    assert localdb.main(["exec", "--", "sh", "-c", "exit 7"]) == 7  # the command's exit code


def _cli(server: localdb.Server, script: str, **extra: str) -> subprocess.CompletedProcess:
    """``script`` in a shell of its own, pointed at ``server``'s AIRFLOW_HOME and no variable of this process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CHARTSYNC_"))}
    env.update({"AIRFLOW_HOME": str(server.root.parent), "PYTHONPATH": str(ROOT / "include"),
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra})
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120)


def test_env_names_the_port_the_server_runs_on(server):
    server.start()
    assert server.live_port() == server.port
    other = free_port()  # the variable says one port, the server runs on another: the running one wins
    done = _cli(server, "python -m chartsync.localdb env", **{settings.PG_PORT_ENV: str(other)})
    assert done.returncode == 0, done.stderr
    assert f"@127.0.0.1:{server.port}/{localdb.METADATA_DB}'" in done.stdout, done.stdout
    assert json.loads(done.stdout.split("AIRFLOW_CONN_CHART_DB=", 1)[1].strip().strip("'"))["port"] == server.port
    assert f":{other}" not in done.stdout
    assert localdb.home_server({"AIRFLOW_HOME": str(server.root.parent), settings.PG_PORT_ENV: str(other)}).port \
        == server.port
    status = _cli(server, "python -m chartsync.localdb status")
    assert status.returncode == 0 and f"running on 127.0.0.1:{server.port}" in status.stdout, status.stdout


def test_stop_after_the_second_shell_recipe_stops_the_server(server):
    """The README's second shell: eval "$(make -s env)" (what make runs), then localdb stop."""
    server.start()
    done = _cli(server, 'eval "$(python -m chartsync.localdb env)" && python -m chartsync.localdb stop')
    assert done.returncode == 0, done.stderr
    assert f"stopped: embedded PostgreSQL 127.0.0.1:{server.port}" in done.stdout
    assert not server.running()
    with pytest.raises(psycopg2.OperationalError):
        _connect(server, localdb.METADATA_DB)
    again = _cli(server, "python -m chartsync.localdb stop")  # nothing runs: say so, and fail
    assert again.returncode == 1
    assert "no embedded PostgreSQL is running" in again.stderr and "stopped" not in again.stdout
    assert server.live_port() is None
