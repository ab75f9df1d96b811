"""Schemathesis against the live OpenAPI spec of the chart-sync API: no input may cause a 5xx, and every 4xx
body is strict JSON. The hooks (tests/schemathesis_hooks.py) also send non-finite numbers: NaN, Infinity, 1e999.

Runs the same command as the README's "REST API" section, bounded (--max-examples), as admin,
against a real api-server with a dag-processor (so triggers and heals reach Airflow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from schemathesis_hooks import SENT_LOG_ENV

from conftest import ARTIFACTS, ROOT, make_airflow_env, start_airflow, stop_airflow, wait_for

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25
SEEDED = ("spotify-top-200-global-daily", "spotify-top-200-us-weekly")


def schemathesis_command(api_url: str, token: str, report: Path) -> list[str]:
    return [
        str(Path(sys.executable).parent / "schemathesis"), "run", f"{api_url}/chart-sync/openapi.json",
        "--header", f"Authorization: Bearer {token}",
        "--checks", "not_a_server_error,error_body_is_json",
        "--max-examples", str(MAX_EXAMPLES), "--seed", "20261125",
        "--generation-database", "none", "--request-timeout", "60", "--no-color",
        "--report", "junit", "--report-junit-path", str(report),
    ]


@pytest.fixture(scope="module")
def services(tmp_path_factory, emulator):
    base = tmp_path_factory.mktemp("schemathesis")
    db = base / "chart.db"
    af = make_airflow_env(base, emulator.url, json.dumps({"conn_type": "sqlite", "host": str(db)}),
                          f"sqlite:///{db}")
    af.chartsync("charts", "import", "--platform", "spotify")
    for slug in SEEDED:
        af.chartsync("schedules", "add", slug, "--no-history")
    services = start_airflow(af, components=("api-server", "dag-processor"))
    yield services
    stop_airflow(services)


def test_no_generated_request_causes_a_server_error(services):
    token = services.token("admin")
    headers = {"Authorization": f"Bearer {token}"}
    dag_id = f"chart_sync__{SEEDED[0]}"
    wait_for(lambda: requests.get(f"{services.api_url}/api/v2/dags/{dag_id}", headers=headers, timeout=10).ok,
             120, f"{dag_id} to be parsed", interval=1)
    ARTIFACTS.mkdir(exist_ok=True)
    report = ARTIFACTS / "schemathesis-junit.xml"
    hostile_log = ARTIFACTS / "schemathesis-hostile-bodies.txt"
    hostile_log.unlink(missing_ok=True)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", SENT_LOG_ENV: str(hostile_log),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(schemathesis_command(services.api_url, token, report), capture_output=True, text=True,
                          timeout=240, check=False, env=env)
    output = done.stdout[-6000:] + done.stderr[-2000:]
    print(output)  # the summary, for -s and for failures
    assert done.returncode == 0, f"schemathesis found problems (report: {report}):\n{output}"
    assert "Server error" not in output
    assert " passed" in output
    sent = hostile_log.read_text().splitlines() if hostile_log.exists() else []
    for token in ("NaN", "Infinity", "1e999"):  # the hooks really sent each kind of hostile number
        assert any(token in body for body in sent), f"no body with {token} was sent"
