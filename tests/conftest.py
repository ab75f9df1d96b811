"""Fixtures that start real servers only when a test asks for them: the Soundcharts emulator, PostgreSQL,
Airflow homes and the alert receivers (the code that starts them lives in ``tests/stacks``). Each cleans
up after itself. Tests that need a server are marked ``server`` here, so ``make test-fast`` leaves them out."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stacks import (
    AirflowEnv,
    AlertReceiver,
    Postgres,
    SmtpReceiver,
    make_airflow_env,
    metadata_database,
    session_postgres,
    start_airflow,
    stop_airflow,
)

# pytest (importlib mode) loads this file as ``tests.conftest``; unit tests import ``migrated_chart_engine``
# from it as ``conftest``: one module either way.
sys.modules.setdefault("conftest", sys.modules[__name__])

# fixtures that start a server: a test that uses one (or is parametrized on PostgreSQL) is a `server` test
SERVER_FIXTURES = {"postgres", "airflow_db", "stack_metadata", "airflow_sqlite", "airflow_postgres", "airflow_services"}
SERVER_DIRS = ("integration", "e2e")


def pytest_configure(config) -> None:
    """Airflow reads its home once, at import: each pytest process gets a private one, never the developer's
    $AIRFLOW_HOME. Its metadata DB is a placeholder until a test asks for ``airflow_db``; nothing starts here."""
    config.addinivalue_line("markers", "server: starts a server (PostgreSQL, Airflow); make test-fast leaves it out")
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return  # pytest-xdist's controller runs no test
    if "airflow" in sys.modules:
        raise pytest.UsageError("airflow was imported before tests/conftest.py could give it a home")
    home = Path(tempfile.mkdtemp(prefix="chartsync-pytest-airflow-"))
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'no-metadata-db-ask-for-airflow_db.db'}"
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"


# The longest files, longest first (worker seconds of a fresh-clone run): xdist hands files out in collection
# order (make test turns off its reordering by test count: --no-loadscope-reorder), so these start first and the short ones fill in around them (the run ends when its longest file
# does). Order only: no test depends on it, and a file not listed runs after these, in its usual order.
LONGEST_FIRST = [f"tests/{name}.py" for name in (
    "integration/test_make_run", "integration/test_outages", "integration/test_gap_healing",
    "integration/test_heal_during_catchup", "integration/test_celery", "integration/test_quality",
    "integration/test_soak", "integration/test_doors", "integration/test_failures",
    "integration/test_api_schemathesis", "integration/test_alerts", "integration/test_audience",
    "integration/test_sync_dag_run", "integration/test_track_metadata", "e2e/test_pages", "e2e/test_airflow_ui",
    "integration/test_quota", "integration/test_scheduler_catchup", "integration/test_api", "e2e/test_fab_auth",
    "integration/test_metrics",
    "e2e/test_history_pages",
    "integration/test_history_pages")]


def _file_rank(item) -> int:
    path = item.nodeid.split("::")[0]
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config, items) -> None:
    items.sort(key=_file_rank)  # stable: a file's tests keep their order
    for item in items:
        parts = Path(str(item.fspath)).parts
        param = getattr(getattr(item, "callspec", None), "params", {})
        if (SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) or any(d in parts for d in SERVER_DIRS)
                or "postgres" in param.values() or item.get_closest_marker("integration")):
            item.add_marker(pytest.mark.server)


_FILE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report) -> None:
    """Seconds spent per test file (setup, call and teardown; with xdist, the controller sees every report)."""
    _FILE_SECONDS[report.nodeid.split("::")[0]] = _FILE_SECONDS.get(report.nodeid.split("::")[0], 0.0) + report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    if not _FILE_SECONDS:
        return
    terminalreporter.section("seconds per test file (worker time, longest first)")
    for path, seconds in sorted(_FILE_SECONDS.items(), key=lambda kv: -kv[1])[:25]:
        terminalreporter.write_line(f"{seconds:8.1f}  {path}")
    terminalreporter.write_line(f"{sum(_FILE_SECONDS.values()):8.1f}  in all")


# -- the Soundcharts emulator (a thread of the test process) ------------------------------------------
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


# -- PostgreSQL, and Airflow's metadata DB for the Airflow code of the test process ------------------------
@pytest.fixture(scope="session")
def postgres() -> Postgres:
    return session_postgres()


def point_airflow_at(url: str) -> str:
    """Point the Airflow code of the test process at the metadata DB ``url``; returns the URL it had."""
    from airflow import settings

    before = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = url
    settings.configure_vars()
    settings.reconfigure_orm()
    return before


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """A migrated Airflow metadata DB for the Airflow code that runs inside the test process (the services'
    and the CLI's calls into Airflow's models): a copy of the session's template on its PostgreSQL."""
    url = session_postgres().url(metadata_database())
    point_airflow_at(url)
    return url


@pytest.fixture(scope="module")
def stack_metadata(request):
    """The test process's Airflow code on the module's own stack (its ``af`` fixture), so what it reads of
    Airflow (a DAG's catchup front, its runs) is what the stack's api-server sees; restored after."""
    af = request.getfixturevalue("af")
    before = point_airflow_at(af.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    yield
    point_airflow_at(before)


@pytest.fixture(scope="module")
def now() -> datetime:
    """The time a module's fixtures set up, for history written relative to it: a file may run many minutes
    after the suite is collected, too late for a clock read at import (the catchup figures count the tries
    of the last hour)."""
    return datetime.now(UTC).replace(microsecond=0)


# -- Airflow homes -----------------------------------------------------------------------------------------
@pytest.fixture
def airflow_sqlite(tmp_path, emulator) -> AirflowEnv:
    import json

    db = tmp_path / "chart.db"
    return make_airflow_env(tmp_path, emulator.url, json.dumps({"conn_type": "sqlite", "host": str(db)}),
                            f"sqlite:///{db}")


@pytest.fixture
def airflow_postgres(tmp_path, emulator, postgres) -> AirflowEnv:
    name = postgres.create_database(f"chart_{tmp_path.name[-20:].lower().replace('-', '_')}")
    return make_airflow_env(tmp_path, emulator.url, postgres.conn_json(name), postgres.url(name))


@pytest.fixture
def airflow_services(airflow_sqlite):
    services = start_airflow(airflow_sqlite)
    yield services
    stop_airflow(services)


# -- alert receivers ---------------------------------------------------------------------------------------
@pytest.fixture
def alert_receiver() -> Iterator[AlertReceiver]:
    receiver = AlertReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver()
    yield receiver
    receiver.close()


def run_coroutine(coroutine):
    """``asyncio.run`` in a thread of its own, as the triggerer runs a callback: the test process may hold a
    running event loop already (Playwright's, from a browser test earlier in the same worker)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


_SQLITE_TEMPLATE: list[Path] = []


def migrated_sqlite(path: Path):
    """An engine on a new SQLite chart DB at ``path`` at the newest revision: a copy of a file migrated once
    per test process (the migrations take half a second; a copy takes a millisecond)."""
    from sqlalchemy import create_engine

    from chartsync.store.migrate import upgrade

    if not _SQLITE_TEMPLATE:
        template = Path(tempfile.mkdtemp(prefix="chartsync-chart-template-")) / "chart.db"
        engine = create_engine(f"sqlite:///{template}")
        upgrade(engine)
        engine.dispose()
        _SQLITE_TEMPLATE.append(template)
    shutil.copyfile(_SQLITE_TEMPLATE[0], path)
    return create_engine(f"sqlite:///{path}")


def migrated_chart_engine(request, tmp_path: Path, name: str):
    """A migrated chart DB for a fixture parametrized ``["sqlite", "postgres"]``: a SQLite file in
    ``tmp_path``, or database ``name`` on the session's PostgreSQL."""
    from sqlalchemy import create_engine

    from chartsync.store.migrate import upgrade

    if request.param == "sqlite":
        return migrated_sqlite(tmp_path / "chart.db")
    pg = request.getfixturevalue("postgres")
    engine = create_engine(pg.url(pg.create_database(name)))
    upgrade(engine)
    return engine
