"""An Airflow home (its metadata DB a copy of the session's migrated template) and its processes."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stacks.postgres import add_sync_pool, metadata_database, session_postgres
from stacks.processes import BIN, ROOT, free_port, server_allowed, wait_for


# Airflow's default auth manager is SimpleAuthManager (users from SIMPLE_AUTH_MANAGER_USERS); the FAB one is what
# deploy/ configures, its users and roles in the metadata DB
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


def soundcharts_conn(url: str) -> str:
    return json.dumps({"conn_type": "http", "host": url, "login": "soundcharts", "password": "soundcharts"})


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

    def add_fab_user(self, name: str, role: str) -> None:
        """A FAB user of ``role`` (Admin, Op, User, Viewer), its password its name, as deploy/ creates its admin."""
        self.airflow("users", "create", "--role", role, "--username", name, "--password", name,
                     "--email", f"{name}@chart-sync.invalid", "--firstname", name, "--lastname", role)

    def chartsync(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([str(BIN / "chartsync"), *args], env=self.env, capture_output=True, text=True,
                              timeout=300)
        if check and done.returncode != 0:
            raise AssertionError(f"chartsync {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def engine(self):
        from sqlalchemy import create_engine

        return create_engine(self.chart_db_url)


def make_airflow_env(base: Path, emulator_url: str, chart_conn: str, chart_db_url: str,
                     metadata_url: str | None = None, auth_manager: str = "simple") -> AirflowEnv:
    """A private AIRFLOW_HOME whose metadata DB is on PostgreSQL: ``metadata_url`` (migrated here), or by
    default a copy of the session's migrated template. ``auth_manager="fab"``: the FAB auth manager and no
    user yet (``add_fab_user``; ``airflow db migrate`` made FAB's tables: it migrates every installed provider's
    DB manager's, so ``airflow fab-db migrate`` has nothing to do); else SimpleAuthManager with ``admin`` and
    ``viewer``."""
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
        # the home's secrets, shared by its components (each would otherwise generate airflow.cfg, and its
        # own secrets, when they start at once: a task's token would then be invalid at the api-server)
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # a DAG file is parsed again 15 s after its last parse (Airflow's default: 30 s), so a schedule changed
        # while the stack runs reaches its DAG soon; at 5 s, parsing took a sixth of a core per idle stack
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "15",
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
        add_sync_pool(env)
    else:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = session_postgres().url(metadata_database())
    from chartsync import demo

    # sized as make run sizes Airflow (one api-server worker, one parsing process, the execution API's timeout),
    # with make run's ceiling of task slots: Airflow's default forks 32 LocalExecutor workers per stack, and one
    # slot per core leaves a catchup waiting on its tasks' round trips with the cores half idle
    env.setdefault("AIRFLOW__CORE__PARALLELISM", str(demo.MAX_SLOTS))
    env = demo.airflow_env(env, demo.cpu_count())
    if auth_manager == "fab":
        env["AIRFLOW__CORE__AUTH_MANAGER"] = FAB_AUTH_MANAGER
    elif auth_manager != "simple":
        raise ValueError(f"auth_manager is 'simple' or 'fab', not {auth_manager!r}")
    af = AirflowEnv(home, env, chart_db_url)
    upgrade_chart_db(chart_db_url)
    return af


def upgrade_chart_db(url: str) -> None:
    """``chartsync db upgrade`` in the test process (the command's own tests run it as a command)."""
    from sqlalchemy import create_engine

    from chartsync.store.migrate import upgrade

    engine = create_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


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
                          timeout=60)  # an api-server's first answers, on a busy machine, can take seconds
        r.raise_for_status()
        return r.json()["access_token"]


def start_airflow(af: AirflowEnv, components=("api-server", "scheduler", "dag-processor")) -> AirflowServices:
    server_allowed("Airflow")
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




def wait_for_next_run(services: AirflowServices, dag_id: str, period, timeout: float = 120) -> None:
    """Until Airflow's next scheduled run of ``dag_id`` is the one for ``period`` (a date): the
    dag-processor has parsed the DAG as its schedule now reads, and its catchup front stands there."""
    import requests

    headers = {"Authorization": f"Bearer {services.token()}"}

    def there() -> bool:
        r = requests.get(f"{services.api_url}/api/v2/dags/{dag_id}", headers=headers, timeout=10)
        return r.status_code == 200 and (r.json().get("next_dagrun_logical_date") or "")[:10] == period.isoformat()

    wait_for(there, timeout, f"{dag_id}'s next run to be for {period}", interval=1)


def finish_catchups(af: AirflowEnv, dag_id_prefix: str = "chart_sync__") -> None:
    """The state Airflow's scheduler leaves once every catchup is over: each chart DAG's next run is the
    current period's. For a site seeded straight into the chart DB whose dag-processor has parsed the DAGs
    and stopped (while one runs, it recomputes the next run at every parse)."""
    from datetime import UTC, datetime

    from sqlalchemy import create_engine, text

    metadata = create_engine(af.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    with metadata.begin() as conn:
        conn.execute(text("UPDATE dag SET next_dagrun = :now WHERE dag_id LIKE :prefix"),
                     {"now": datetime.now(UTC), "prefix": f"{dag_id_prefix}%"})
    metadata.dispose()
