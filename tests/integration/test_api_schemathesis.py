"""No input may cause a 5xx or a dropped connection, and a refused request writes nothing: against a real
api-server (and a dag-processor, so triggers and heals reach Airflow), as admin, on a chart DB on PostgreSQL
(which refuses NUL in text).

- Schemathesis runs the same command as the docs' REST API page (docs/rest-api.md), bounded
  (--max-examples): every operation and method of the live spec, in every phase (examples, coverage, fuzzing, and stateful, which
  follows the spec's links: create a schedule, then read, change and delete it). Every 4xx body must be
  strict JSON. The hooks (tests/schemathesis_hooks.py) also send non-finite numbers: NaN, Infinity, 1e999.
- The hostile-input test sends what the spec does not describe, to the pages (paths, queries, forms with
  the caller's CSRF token) and the API (paths, queries, bodies): NUL and other control characters, digits
  of other scripts (``²``, ``١``), ids spelled ``1.0``/``01``/``+1``, huge values. One keep-alive session,
  as a browser or a script holds it: a server error closes the connection under the next request.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import quote, urljoin

import pytest
import requests
from sqlalchemy import func, select

from chartsync.store.tables import chart_sync_audit, chart_sync_schedule
from schemathesis_hooks import SENT_LOG_ENV

from stacks import ARTIFACTS, ROOT, make_airflow_env, start_airflow, stop_airflow, wait_for

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25
SEEDED = ("spotify-top-200-global-daily", "spotify-top-200-us-weekly")
API = "/chart-sync/api/sync"
UI = "/chart-sync/ui"


def schemathesis_command(api_url: str, token: str, report: Path) -> list[str]:
    return [
        str(Path(sys.executable).parent / "schemathesis"), "run", f"{api_url}/chart-sync/openapi.json",
        "--header", f"Authorization: Bearer {token}",
        "--checks", "not_a_server_error,error_body_is_json",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(MAX_EXAMPLES), "--seed", "20261125",
        "--generation-database", "none", "--request-timeout", "60", "--no-color",
        "--report", "junit", "--report-junit-path", str(report),
    ]


@pytest.fixture(scope="module")
def af(tmp_path_factory, emulator, postgres):
    base = tmp_path_factory.mktemp("schemathesis")
    name = postgres.create_database("schemathesis_chart")
    af = make_airflow_env(base, emulator.url, postgres.conn_json(name), postgres.url(name))
    af.chartsync("charts", "import", "--platform", "spotify")
    for slug in SEEDED:
        af.chartsync("schedules", "add", slug, "--no-history")
    return af


@pytest.fixture(scope="module")
def services(af):
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
                          timeout=300, check=False, env=env)
    output = done.stdout[-6000:] + done.stderr[-2000:]
    print(output)  # the summary, for -s and for failures
    assert done.returncode == 0, f"schemathesis found problems (report: {report}):\n{output}"
    assert "Server error" not in output
    assert re.search(r"(\d+) generated, \1 passed", output), output
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in output, f"the {phase} phase did not run"
    assert re.search(r"Selected: (\d+)/\1", output), "an operation of the spec was left out"
    sent = hostile_log.read_text().splitlines() if hostile_log.exists() else []
    for token in ("NaN", "Infinity", "1e999"):  # the hooks really sent each kind of hostile number
        assert any(token in body for body in sent), f"no body with {token} was sent"


# -- hostile input beyond the spec ---------------------------------------------------------------------------
HOSTILE = (
    "\x00", "a\x00b", "\x01", "\x1f", "\x7f", "\x85", "a\nb", "\r\n", "\t",  # control characters
    "\u00b2", "\u0661", "\uff11", "1\u0662",  # digits of other scripts: superscript two, Arabic-Indic, fullwidth
    "1.0", "01", "+1", " 1", "1 ", "1_0", "0x1", "1e3", "-1", "0", "2147483648", "9" * 40,  # not ids
    "%", "%ff", "<b>", "'", "\ud800",
)
HUGE = "x" * 7000  # within the door's cap on an address
TOO_LONG = "x" * 9000  # over it


class Probe:
    """Sends hostile requests over one keep-alive session and tallies the answers."""

    def __init__(self, services, engine):
        self.base, self.engine = services.api_url, engine
        self.session = requests.Session()
        self.session.cookies.set("_token", services.token("admin"))
        self.session.headers["Origin"] = self.base
        self.statuses: Counter[int] = Counter()
        self.problems: list[str] = []
        page = self.session.get(self.base + UI + "/charts", timeout=60)
        self.csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)

    def counts(self) -> tuple[int, int]:
        with self.engine.connect() as conn:
            return tuple(conn.scalar(select(func.count()).select_from(t)) for t in (chart_sync_schedule,
                                                                                   chart_sync_audit))

    def send(self, method: str, path: str, refused: bool = False, **kwargs) -> None:
        """One request, its path sent as written; a 4xx answer must have written nothing, and a request
        that names no resource (``refused``) must get one."""
        before = self.counts()
        what = f"{method} {path[:120]!r} {str(kwargs)[:160]}"
        try:
            r = self.session.request(method, self.base + path, timeout=60, allow_redirects=False, **kwargs)
        except requests.ConnectionError as exc:
            self.statuses["dropped"] += 1
            self.problems.append(f"{what}: connection dropped ({exc})")
            return
        self.statuses[r.status_code] += 1
        if r.status_code >= 500:
            self.problems.append(f"{what}: {r.status_code} {r.text[:200]}")
        elif 400 <= r.status_code < 500 and self.counts() != before:
            self.problems.append(f"{what}: refused with {r.status_code} but wrote")
        elif refused and r.status_code < 400 and self.followed(r).status_code < 400:
            self.problems.append(f"{what}: answered {r.status_code}, as if it named something")


    def followed(self, r: requests.Response) -> requests.Response:
        """Where a redirect leads: Airflow's router answers a path it cannot match (a newline in it) with a
        307 to the same path without its trailing slash, which the plugin then refuses."""
        if not r.is_redirect:
            return r
        return self.session.request(r.request.method, urljoin(r.url, r.headers["location"]), timeout=60,
                                    allow_redirects=False, data=r.request.body,
                                    headers={"Content-Type": r.request.headers.get("Content-Type", "")})


def segment(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def test_no_hostile_request_causes_a_server_error_a_dropped_connection_or_a_write(services, af):
    probe = Probe(services, af.engine())
    schedule_id = probe.session.get(f"{probe.base}{API}/schedules/", timeout=60).json()["items"][0]["id"]
    dag_id = f"chart_sync__{SEEDED[0]}"
    query_names = ("q", "platform", "status", "frequency", "page", "sort", "desc", "kind", "chart", "days", "actor",
                   "target", "target_id", "flag", "quality_page", "from", "to", "page_size", "limit", "offset",
                   "entity_id", "history", "chart_id", "active")
    for name in query_names:  # a huge value in each parameter on its own
        for path in (f"{UI}/charts", f"{API}/schedules/"):
            probe.send("GET", f"{path}?{name}={HUGE}")
    for value in (*HOSTILE, HUGE, TOO_LONG):
        v = segment(value)
        for path in (f"{UI}/schedules/{v}", f"{UI}/charts/{v}/ranking", f"{API}/schedules/{v}/",
                     f"{API}/schedules/{v}/history/", f"{API}/schedules/{v}/quality/", f"{API}/status/{v}/"):
            probe.send("GET", path, refused=True)
        for path in (f"{UI}/songs/{v}", f"{UI}/dags/{v}", f"{UI}/dags/chart_sync__{v}", f"{UI}/dags/{v}/runs/{v}",
                     f"{UI}/dags/{dag_id}/runs/{v}", f"{UI}/static/{v}"):
            probe.send("GET", path)
        for method in ("DELETE", "PATCH", "PUT"):
            probe.send(method, f"{API}/schedules/{v}/", refused=True, json={"is_active": False})
        query = "&".join(f"{name}={v}" for name in query_names)
        for path in (f"{UI}/charts", f"{UI}/schedules", f"{UI}/schedules/{schedule_id}", f"{UI}/alerts",
                     f"{UI}/audit", f"{UI}/stats", f"{API}/schedules/", f"{API}/audit/", f"{API}/alerts/",
                     f"{API}/gaps/", f"{API}/stats/", f"{API}/schedules/{schedule_id}/history/"):
            probe.send("GET", f"{path}?{query}")
        form = {"csrf_token": probe.csrf, "confirmed": "1"}
        for path, fields, refused in (
            (f"{UI}/schedules/bulk", {"single": f"activate:{value}"}, True),
            (f"{UI}/schedules/bulk", {"action": "deactivate", "schedule_id": value}, True),
            (f"{UI}/charts/bulk", {"action": "add", "chart_id": value, "frequency": "daily"}, True),
            (f"{UI}/charts/bulk", {"action": value, "chart_id": value, "next": value, "frequency": value,
                                   "custom_interval_hours": value, "cron_expression": value}, False),
            (f"{UI}/schedules/{schedule_id}/action", {"action": value, "next": value}, False),
            (f"{UI}/schedules/{schedule_id}/config", {"sync_frequency": "custom", "custom_interval_hours": value},
             False),  # "01" is 1 hour
            (f"{UI}/schedules/{schedule_id}/config", {"sync_frequency": "daily", "deadline_hours": value}, False),
            (f"{UI}/schedules/{v}/config", {"sync_frequency": "daily"}, True),
            (f"{UI}/songs/{v}/fetch", {"force": "1"}, False),
        ):
            fields = {k: f.encode("utf-8", "surrogatepass") for k, f in fields.items()}
            probe.send("POST", path, refused=refused, data={**form, **fields})
        for path, body, refused in (
            (f"{API}/schedules/bulk/", {"action": value, "chart_ids": [value]}, True),
            (f"{API}/schedules/bulk/", {"action": "remove", "chart_ids": [1], value: 1}, True),
            (f"{API}/gaps/heal/", {"slugs": [value]}, True),
            (f"{API}/schedules/", {"chart_id": 3, "cron_expression": value, "sync_frequency": "cron"}, True),
            (f"{API}/trigger/", {"chart_id": value}, True),
        ):
            probe.send("POST", path, refused=refused, data=json.dumps(body), headers={"Content-Type": "application/json"})
    big = json.dumps({"action": "remove", "chart_ids": [1], "pad": "x" * (2 * 1024 * 1024)})
    probe.send("POST", f"{API}/schedules/bulk/", data=big, headers={"Content-Type": "application/json"})
    probe.send("POST", f"{API}/schedules/bulk/", data=iter([big.encode()[i:i + 65536]
                                                            for i in range(0, len(big), 65536)]),
               headers={"Content-Type": "application/json"})  # chunked: no Content-Length
    probe.send("POST", f"{UI}/charts/bulk", files={"action": (None, "add"), "csrf_token": (None, probe.csrf)})
    probe.send("GET", f"{API}/schedules/{schedule_id}/")  # the session still answers after all of it
    sent = sum(probe.statuses.values())
    print(f"hostile requests: {sent}, answers: {dict(sorted(probe.statuses.items(), key=str))}")
    assert not probe.problems, "\n".join(probe.problems[:40])
    assert probe.statuses[200] >= 1 and probe.statuses[413] == 2 and probe.statuses[414] >= 1
    assert probe.session.get(f"{probe.base}{API}/schedules/{schedule_id}/", timeout=60).status_code == 200
