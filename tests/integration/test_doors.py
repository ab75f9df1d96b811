"""Three doors, one schedule service: the ``chartsync`` CLI, the REST API and the admin pages.

The same scenario runs through each door, on a chart of its own: add a schedule, deactivate it,
activate it again, heal its gaps, remove it. After every step the effects are read from where they
land, never from the door's answer: the ``chart_sync_schedule`` row, the DAG's paused state and
backfills in Airflow (its REST API), and the ``chart_sync_audit`` rows. The last test compares the
three doors: the same settings, the same audit trail, each naming the door's actor.

One Airflow home for the module: an api-server (the REST API and the pages) and a dag-processor (so
the chart DAGs exist); no scheduler, nothing needs to run. The CLI is a subprocess on the same
metadata DB and chart DB.
"""

from __future__ import annotations

import getpass
import html
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from typing import Protocol
from urllib.parse import urljoin

import pytest
import requests
from sqlalchemy import func, select, update

from chartsync.services import gaps
from chartsync.store.tables import chart, chart_sync_audit, chart_sync_schedule
from stacks import (
    AirflowEnv,
    AirflowServices,
    make_airflow_env,
    start_airflow,
    stop_airflow,
    wait_for,
    wait_for_next_run,
)

pytestmark = pytest.mark.integration

API = "/chart-sync/api/sync"
UI = "/chart-sync/ui"
DOORS = ("cli", "api", "pages")
CHARTS = {"cli": "spotify-top-200-us-daily", "api": "spotify-top-200-gb-daily", "pages": "spotify-top-200-fr-daily"}
WINDOW_DAYS = 6
SETTINGS = ("sync_frequency", "is_active", "sync_immediately", "sync_historical_data", "fetch_track_metadata",
            "custom_interval_hours", "cron_expression", "deadline_hours", "history_start")


# -- fixtures (as in test_api.py) -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def af(tmp_path_factory, emulator) -> AirflowEnv:
    base = tmp_path_factory.mktemp("doors")
    db = base / "chart.db"
    env = make_airflow_env(base, emulator.url, json.dumps({"conn_type": "sqlite", "host": str(db)}),
                           f"sqlite:///{db}")
    env.chartsync("charts", "import", "--platform", "spotify")
    return env


@pytest.fixture(scope="module")
def services(af):
    services = start_airflow(af, components=("api-server",))
    yield services
    stop_airflow(services)


@pytest.fixture(scope="module")
def dag_processor(af, services):
    processor = start_airflow(af, components=("dag-processor",))
    yield processor
    stop_airflow(processor)


@pytest.fixture(scope="module")
def engine(af, stack_metadata):
    return af.engine()


@pytest.fixture(scope="module")
def airflow(services) -> Airflow:
    return Airflow(services)


@pytest.fixture(scope="module")
def doors(af, services, engine) -> dict[str, Door]:
    return {"cli": CliDoor(af), "api": ApiDoor(services, engine), "pages": PagesDoor(services, engine)}


@pytest.fixture(scope="module")
def effects() -> dict[str, Effects]:
    """What each door's scenario left behind, for the comparison at the end."""
    return {}


# -- reading the effects ----------------------------------------------------------------------------------
class Airflow:
    """Airflow's own REST API, as an observer (never a door)."""

    def __init__(self, services: AirflowServices):
        self.base = services.api_url
        self.headers = {"Authorization": f"Bearer {services.token('admin')}"}

    def get(self, path: str, **params) -> requests.Response:
        return requests.get(f"{self.base}/api/v2{path}", params=params, headers=self.headers, timeout=30)

    def dag(self, dag_id: str) -> dict | None:
        r = self.get(f"/dags/{dag_id}")
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()

    def is_paused(self, dag_id: str) -> bool:
        dag = self.dag(dag_id)
        assert dag is not None, f"{dag_id} is not in Airflow"
        return dag["is_paused"]

    def backfills(self, dag_id: str) -> list[dict]:
        r = self.get("/backfills", dag_id=dag_id)
        r.raise_for_status()
        return r.json()["backfills"]


@dataclass(frozen=True)
class Chart:
    slug: str
    id: int

    @property
    def dag_id(self) -> str:
        return f"chart_sync__{self.slug}"


def a_chart(engine, slug: str) -> Chart:
    with engine.connect() as conn:
        return Chart(slug, conn.execute(select(chart.c.id).where(chart.c.slug == slug)).scalar_one())


def schedule_row(engine, chart_id: int):
    with engine.connect() as conn:
        return conn.execute(select(chart_sync_schedule).where(chart_sync_schedule.c.chart_id == chart_id)).first()


def schedule_id(engine, chart_id: int) -> int:
    row = schedule_row(engine, chart_id)
    assert row is not None, f"chart {chart_id} has no schedule"
    return row.id


def settings_of(row) -> dict:
    """The settings columns, normalised across dialects (booleans as bool, the date as an ISO string)."""
    values = {name: getattr(row, name) for name in SETTINGS}
    for name in ("is_active", "sync_immediately", "sync_historical_data", "fetch_track_metadata"):
        values[name] = bool(values[name])
    values["history_start"] = date.fromisoformat(str(values["history_start"])[:10]).isoformat()
    return values


def gap_ranges(engine, chart_id: int) -> list[tuple[date, date]]:
    return [(g.start, g.end) for g in gaps.list_gaps(engine, chart_id=chart_id)]


def last_audit_id(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.coalesce(func.max(chart_sync_audit.c.id), 0))).scalar_one()


def audit_rows_since(engine, mark: int) -> list:
    """The audit rows written after ``mark``, oldest first (the scenarios run one at a time)."""
    with engine.connect() as conn:
        return conn.execute(select(chart_sync_audit).where(chart_sync_audit.c.id > mark)
                            .order_by(chart_sync_audit.c.id)).all()


def changed_columns(row) -> tuple[str, ...]:
    """Which schedule columns an update's audit row says changed (updated_at aside)."""
    before, after = row.before or {}, row.after or {}
    return tuple(sorted(k for k in set(before) | set(after)
                        if k != "updated_at" and before.get(k) != after.get(k)))


# -- the doors --------------------------------------------------------------------------------------------
class Door(Protocol):
    actor: str

    def add(self, chart_: Chart) -> None: ...

    def deactivate(self, chart_: Chart) -> None: ...

    def activate(self, chart_: Chart) -> None: ...

    def heal(self, chart_: Chart) -> None: ...

    def remove(self, chart_: Chart) -> None: ...


class CliDoor:
    """``chartsync`` as a subprocess (exit code 0 asserted by ``AirflowEnv.chartsync``)."""

    def __init__(self, af: AirflowEnv):
        self.af = af
        self.actor = f"cli:{getpass.getuser()}"

    def add(self, chart_):
        self.af.chartsync("schedules", "add", chart_.slug)

    def deactivate(self, chart_):
        self.af.chartsync("schedules", "deactivate", chart_.slug)

    def activate(self, chart_):
        self.af.chartsync("schedules", "activate", chart_.slug)

    def heal(self, chart_):
        out = self.af.chartsync("gaps", "heal", chart_.slug).stdout
        assert f"{chart_.slug}: created: " in out, out

    def remove(self, chart_):
        self.af.chartsync("schedules", "remove", chart_.slug)

    def refused(self, chart_, bad: dict) -> str:
        flags = {"sync_frequency": "--frequency", "custom_interval_hours": "--interval-hours",
                 "cron_expression": "--cron"}
        args = [a for name, value in bad.items() for a in (flags[name], str(value))]
        done = self.af.chartsync("schedules", "add", chart_.slug, *args, check=False)
        assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
        [line] = [x for x in done.stderr.splitlines() if x.startswith("chartsync: error: ")]
        return line.removeprefix("chartsync: error: ")


class ApiDoor:
    """The REST API with the admin's bearer token."""

    actor = "admin"

    def __init__(self, services: AirflowServices, engine):
        self.base = services.api_url + API
        self.headers = {"Authorization": f"Bearer {services.token('admin')}"}
        self.engine = engine

    def call(self, method: str, path: str, expected: int = 200, **kw) -> dict:
        r = requests.request(method, self.base + path, headers=self.headers, timeout=60, **kw)
        assert r.status_code == expected, (method, path, r.status_code, r.text)
        return r.json()

    def add(self, chart_):
        self.call("POST", "/schedules/", 201, json={"chart_id": chart_.id})

    def deactivate(self, chart_):
        self.call("PATCH", f"/schedules/{schedule_id(self.engine, chart_.id)}/", json={"is_active": False})

    def activate(self, chart_):
        self.call("PATCH", f"/schedules/{schedule_id(self.engine, chart_.id)}/", json={"is_active": True})

    def heal(self, chart_):
        [result] = self.call("POST", "/gaps/heal/", json={"slugs": [chart_.slug]})["results"]
        assert result["status"] == "created", result

    def remove(self, chart_):
        self.call("DELETE", f"/schedules/{schedule_id(self.engine, chart_.id)}/")

    def refused(self, chart_, bad: dict) -> str:
        detail = self.call("POST", "/schedules/", 422, json={"chart_id": chart_.id, **bad})["detail"]
        assert len(detail) == 1 and detail[0]["loc"][0] == "body", detail
        return detail[0]["msg"]


@dataclass
class Form:
    """A form of a page, and what a browser submits from it."""

    action: str
    fields: list[tuple[str, str]] = field(default_factory=list)  # text, number, hidden inputs and selects
    boxes: list[tuple[str, str, bool]] = field(default_factory=list)  # checkboxes: name, value, checked
    choices: dict[str, list[str]] = field(default_factory=dict)  # the options of each select

    def data(self, choose: dict[str, str] | None = None, tick: tuple[tuple[str, str], ...] = (),
             fill: dict[str, str] | None = None) -> list[tuple[str, str]]:
        """The submitted pairs after choosing options, typing into text boxes and ticking boxes the page offers."""
        choose = choose or {}
        for name, value in choose.items():
            assert value in self.choices.get(name, []), f"the form offers no {name}={value!r}: {self.choices}"
        typed = {name for name, _ in self.fields} - set(self.choices)
        assert set(fill or {}) <= typed, f"the form has no text box {sorted(set(fill or {}) - typed)}"
        choose = choose | (fill or {})
        offered = {(name, value) for name, value, _ in self.boxes}
        for box in tick:
            assert box in offered, f"the form has no checkbox {box}: {sorted(offered)}"
        return ([(name, choose.get(name, value)) for name, value in self.fields]
                + [(name, value) for name, value, checked in self.boxes if checked or (name, value) in tick])


class FormParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.form: Form | None = None
        self.select: list | None = None  # [name, first option, selected option]

    def handle_starttag(self, tag, attrs):
        a = {k: v if v is not None else "" for k, v in attrs}
        if tag == "form":
            self.form = Form(a.get("action", ""))
            self.forms.append(self.form)
        elif self.form is None or not a.get("name") and tag != "option":
            return
        elif tag == "input":
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio"):
                self.form.boxes.append((a["name"], a.get("value", "on"), "checked" in a))
            elif kind not in ("submit", "button", "reset", "file", "image"):
                self.form.fields.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self.select = [a["name"], None, None]
            self.form.choices[a["name"]] = []
        elif tag == "option" and self.select is not None:
            value = a.get("value", "")
            self.form.choices[self.select[0]].append(value)
            self.select[1] = value if self.select[1] is None else self.select[1]
            if "selected" in a:
                self.select[2] = value

    def handle_endtag(self, tag):
        if tag == "select" and self.select is not None and self.form is not None:
            name, first, selected = self.select
            self.form.fields.append((name, selected if selected is not None else first or ""))
            self.select = None
        elif tag == "form":
            self.form = None


class PagesDoor:
    """The admin pages, driven like a browser: the UI's ``_token`` cookie, the page's CSRF token, this
    server's Origin, the confirmation step, and the redirect back with a flash message."""

    actor = "admin"
    FLASH = re.compile(r'class="flash flash-(\w+)"[^>]*>\s*<strong>([^<]*)</strong>')

    def __init__(self, services: AirflowServices, engine):
        self.base = services.api_url
        self.engine = engine
        self.browser = requests.Session()
        self.browser.cookies.set("_token", services.token("admin"))
        self.browser.headers["Origin"] = self.base

    def page(self, path: str, **params) -> requests.Response:
        r = self.browser.get(self.base + UI + path, params=params, timeout=60)
        assert r.status_code == 200, (path, r.status_code, r.text[:2000])
        return r

    @staticmethod
    def form(page: requests.Response, action_suffix: str) -> Form:
        parser = FormParser()
        parser.feed(page.text)
        found = [f for f in parser.forms if f.action.split("?")[0].endswith(action_suffix)]
        assert len(found) == 1, (action_suffix, [f.action for f in parser.forms])
        return found[0]

    def submit(self, page: requests.Response, form: Form, data: list[tuple[str, str]]) -> requests.Response:
        assert ("csrf_token", "") not in data and any(name == "csrf_token" for name, _ in data), data
        return self.browser.post(urljoin(page.url, form.action), data=data, timeout=120)

    def done(self, answer: requests.Response) -> str:
        """The page the POST redirected back to, and its flash message, which must report success."""
        assert [r.status_code for r in answer.history] == [303], (answer.status_code, answer.text[:2000])
        assert answer.status_code == 200 and answer.url.startswith(self.base + UI + "/"), answer.url
        flashes = self.FLASH.findall(answer.text)
        assert len(flashes) == 1 and flashes[0][0] == "success", flashes or answer.text[:2000]
        return flashes[0][1]

    def confirmed(self, path: str, action_suffix: str, choose: dict[str, str], tick: tuple[str, str],
                  **params) -> str:
        """A bulk form: choose the action, tick one row, submit, confirm, follow the redirect."""
        page = self.page(path, **params)
        form = self.form(page, action_suffix)
        step = self.submit(page, form, form.data(choose, (tick,)))
        assert step.status_code == 200 and "Confirm:" in step.text, (step.status_code, step.text[:2000])
        confirm = self.form(step, action_suffix)
        assert ("confirmed", "1") in confirm.fields and tick in confirm.fields, confirm
        return self.done(self.submit(step, confirm, confirm.data()))

    def add(self, chart_):
        self.confirmed("/charts", "/charts/bulk", {"action": "add"}, ("chart_id", str(chart_.id)), q=chart_.slug)

    def deactivate(self, chart_):
        sid = str(schedule_id(self.engine, chart_.id))
        self.confirmed("/schedules", "/schedules/bulk", {"action": "deactivate"}, ("schedule_id", sid),
                       q=chart_.slug)

    def activate(self, chart_):
        """Through the schedule page's configuration form: tick "Active", save the rest as shown."""
        sid = schedule_id(self.engine, chart_.id)
        page = self.page(f"/schedules/{sid}")
        form = self.form(page, f"/schedules/{sid}/config")
        assert ("is_active", "on", False) in form.boxes, form.boxes
        text = self.done(self.submit(page, form, form.data(tick=(("is_active", "on"),))))
        assert text.startswith("Configuration saved."), text

    def heal(self, chart_):
        sid = str(schedule_id(self.engine, chart_.id))
        text = self.confirmed("/schedules", "/schedules/bulk", {"action": "heal"}, ("schedule_id", sid),
                              q=chart_.slug)
        assert text == "Heal gaps: 1 created.", text

    def remove(self, chart_):
        self.confirmed("/charts", "/charts/bulk", {"action": "remove"}, ("chart_id", str(chart_.id)),
                       q=chart_.slug)

    def refused(self, chart_, bad: dict) -> str:
        """The charts page's "add" with bad settings: the page again (422), one error message, what was typed
        still in the form."""
        page = self.page("/charts", q=chart_.slug)
        form = self.form(page, "/charts/bulk")
        typed = {name: str(value) for name, value in bad.items() if name != "sync_frequency"}
        data = form.data({"action": "add", "frequency": bad["sync_frequency"]}, (("chart_id", str(chart_.id)),),
                         fill=typed)
        answer = self.submit(page, form, data)
        assert answer.status_code == 422 and not answer.history, (answer.status_code, answer.text[:2000])
        for value in typed.values():
            assert f'value="{html.escape(value)}"' in answer.text, f"the form lost {value!r}"
        flashes = self.FLASH.findall(answer.text)
        assert len(flashes) == 1 and flashes[0][0] == "error", flashes or answer.text[:2000]
        return html.unescape(flashes[0][1])


# -- the scenario, through each door ---------------------------------------------------------------------
@dataclass
class Effects:
    settings: dict
    trail: list[tuple[str, str, tuple[str, ...]]]  # (action, entity, changed columns of an update)
    actors: set[str]


@pytest.mark.parametrize("door_name", DOORS)
def test_a_door_has_the_effects_of_the_schedule_service(door_name, doors, af, services, engine, airflow,
                                                        dag_processor, effects):
    door, chart_ = doors[door_name], a_chart(engine, CHARTS[door_name])
    dag_id = chart_.dag_id
    assert schedule_row(engine, chart_.id) is None and airflow.dag(dag_id) is None
    mark = last_audit_id(engine)  # SQLite reuses the id of a deleted schedule: audit rows are told apart by age

    # add: the row, with the service's defaults; its DAG appears at the next parse, unpaused
    door.add(chart_)
    row = schedule_row(engine, chart_.id)
    assert row is not None, f"{door_name}: no schedule row after add"
    sid, settings = row.id, settings_of(row)
    assert settings["sync_frequency"] == "daily" and settings["is_active"] is True
    wait_for(lambda: airflow.dag(dag_id), 120, f"{dag_id} to be parsed", interval=1)
    assert airflow.is_paused(dag_id) is False

    # deactivate, then activate: the row and the DAG's paused state follow
    door.deactivate(chart_)
    assert schedule_row(engine, chart_.id).is_active is False
    assert airflow.is_paused(dag_id) is True
    door.activate(chart_)
    assert schedule_row(engine, chart_.id).is_active is True
    assert airflow.is_paused(dag_id) is False

    # heal: the periods not synced yet behind the DAG's catchup front are gaps (live, the audit only
    # refreshes what the API published); the backfill covers the first gap range, the others wait for it.
    # The schedule becomes one without history created WINDOW_DAYS ago: Airflow's front is then the
    # newest period (no catchup: this stack runs no scheduler), so the days before it are gaps to heal.
    with engine.begin() as conn:
        conn.execute(update(chart_sync_schedule).where(chart_sync_schedule.c.id == sid).values(
            sync_historical_data=False, created_at=datetime.now(UTC) - timedelta(days=WINDOW_DAYS)))
    wait_for_next_run(services, dag_id, datetime.now(UTC).date() - timedelta(days=1))
    af.chartsync("gaps", "audit", chart_.slug)
    ranges = gap_ranges(engine, chart_.id)
    assert ranges, f"{chart_.slug}: the gap audit recorded no gap"
    assert airflow.backfills(dag_id) == []
    door.heal(chart_)
    [backfill] = airflow.backfills(dag_id)
    [heal_row] = [r for r in audit_rows_since(engine, mark) if r.entity == "backfill"]
    assert (heal_row.action, heal_row.entity_id, heal_row.actor) == ("heal", backfill["id"], door.actor)
    assert heal_row.after["slug"] == chart_.slug and heal_row.after["status"] == "created"
    span = (backfill["from_date"][:10], backfill["to_date"][:10])
    assert span == (heal_row.after["start"], heal_row.after["end"])
    assert any(a.isoformat() <= span[0] and span[1] <= b.isoformat() for a, b in ranges), (span, ranges)

    # remove: the row is gone and the DAG paused (it disappears at the next parse)
    door.remove(chart_)
    assert schedule_row(engine, chart_.id) is None
    assert airflow.is_paused(dag_id) is True

    rows = audit_rows_since(engine, mark)
    about = {("schedule", sid), ("backfill", backfill["id"]), ("chart", chart_.id)}
    assert {(r.entity, r.entity_id) for r in rows} <= about, [(r.action, r.entity, r.entity_id) for r in rows]
    trail = [(r.action, r.entity, changed_columns(r) if r.action == "update" else ()) for r in rows]
    assert {"create", "heal", "delete"} <= {action for action, _, _ in trail}, trail
    assert trail[0][0] == "create" and trail[-1][0] == "delete", trail
    assert rows[0].after["id"] == sid and rows[-1].before["id"] == sid and rows[-1].after is None
    assert all(changed == ("is_active",) for action, _, changed in trail if action == "update"), trail
    assert {r.actor for r in rows} == {door.actor}, [(r.action, r.actor) for r in rows]
    effects[door_name] = Effects(settings, trail, {r.actor for r in rows})


def test_every_door_has_the_same_effects(effects):
    assert list(effects) == list(DOORS), "a door's scenario did not finish"
    cli = effects["cli"]
    for name in ("api", "pages"):
        assert effects[name].settings == cli.settings, name
        assert effects[name].trail == cli.trail, name
    assert {name: e.actors for name, e in effects.items()} == {
        "cli": {f"cli:{getpass.getuser()}"}, "api": {"admin"}, "pages": {"admin"}}


# -- bad input: the same message from every door, naming the field by its label ----------------------------
BAD_SETTINGS = (  # what a browser can send too (the page's select and number box limit the rest)
    ({"sync_frequency": "custom", "custom_interval_hours": 0}, "Interval (hours): must be between 1 and 744"),
    ({"sync_frequency": "custom"}, "Interval (hours): required for the custom frequency"),
    ({"sync_frequency": "cron", "cron_expression": "61 * * * *"},
     "Cron expression: '61 * * * *' is not a valid cron expression"),
    ({"sync_frequency": "cron"}, "Cron expression: required for the cron frequency"),
)


@pytest.fixture(scope="module")
def refusals() -> dict[str, list[str]]:
    return {}


@pytest.mark.parametrize("door_name", DOORS)
def test_a_door_refuses_bad_settings_with_the_validators_message(door_name, doors, engine, refusals):
    door, chart_ = doors[door_name], a_chart(engine, CHARTS[door_name])
    mark = last_audit_id(engine)
    said = []
    for bad, _ in BAD_SETTINGS:
        said.append(door.refused(chart_, bad))
        assert schedule_row(engine, chart_.id) is None, f"{door_name} wrote a schedule for {bad}"
    assert audit_rows_since(engine, mark) == []
    assert said == [message for _, message in BAD_SETTINGS], said
    refusals[door_name] = said


def test_every_door_says_the_same(refusals):
    assert list(refusals) == list(DOORS), "a door's refusals did not finish"
    assert refusals["api"] == refusals["cli"] and refusals["pages"] == refusals["cli"]
