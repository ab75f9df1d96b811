"""The REST API, the pages and their CSRF defence under the FAB auth manager, which deploy/ runs.

One Airflow home for the module, its api-server on the FAB auth manager (``airflow db migrate`` made FAB's
tables), a user per FAB role made with ``airflow users create`` (password = name): ``admin`` (Admin), ``op`` (Op), ``user``
(User), ``viewer`` (Viewer). The chart DB holds the emulator's Spotify charts and two daily schedules; no
DAG is parsed and no scheduler runs. Admin and Op write; User (whose DAG edit access does not reach
chart-sync's writes: they also need Variables edit access) and Viewer read only; anonymous callers get 401
from the API and Airflow's (FAB's) login from the pages. Each write is checked in the chart DB.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from unittest import mock

import pytest
import requests
from sqlalchemy import select

from chartsync.services import charts, schedules
from chartsync.soundcharts.client import SoundchartsClient
from chartsync.store.tables import chart_sync_audit
from e2e.test_airflow_ui import confirm, result
from stacks import AirflowServices, make_airflow_env, start_airflow, stop_airflow

pytestmark = pytest.mark.integration

API = "/chart-sync/api/sync"
UI = "/chart-sync/ui"
ROLES = {"admin": "Admin", "op": "Op", "user": "User", "viewer": "Viewer"}
WRITERS = ("admin", "op")
READERS = ("user", "viewer")
GLOBAL_DAILY = "spotify-top-200-global-daily"  # the API's writes
US_DAILY = "spotify-top-200-us-daily"  # the pages' writes
FR_DAILY = "spotify-top-200-fr-daily"  # not scheduled: the API's creates
WRITE_CONTROLS = "form[method=post], button[name=single], button[name=action]"


@dataclass
class Site:
    services: AirflowServices
    engine: object
    tokens: dict[str, str]

    @property
    def api_url(self) -> str:
        return self.services.api_url

    def api(self, method: str, path: str, user: str | None = None, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return requests.request(method, self.api_url + API + path, headers=headers, timeout=60, **kw)

    def page(self, method: str, path: str, user: str | None = None, **kw) -> requests.Response:
        """A page as the Airflow UI's session cookie asks for it."""
        cookies = {"_token": self.tokens[user]} if user else {}
        return requests.request(method, self.api_url + UI + path, cookies=cookies, allow_redirects=False,
                                timeout=60, **kw)

    def schedule(self, slug: str):
        rows = schedules.load_rows(self.engine, slug)
        return rows[0] if rows else None

    def actors(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.scalars(select(chart_sync_audit.c.actor)))


@pytest.fixture(scope="module")
def airflow_site(tmp_path_factory, emulator):
    base = tmp_path_factory.mktemp("fab")
    db = base / "chart.db"
    af = make_airflow_env(base, emulator.url, json.dumps({"conn_type": "sqlite", "host": str(db)}),
                          f"sqlite:///{db}", auth_manager="fab")
    for name, role in ROLES.items():
        af.add_fab_user(name, role)
    # what deploy/ grants Viewer and User so that the Airflow UI lists and embeds the pages; User keeps FAB's stock
    # roles here, to show what it is missing
    af.airflow("roles", "add-perms", "Viewer", "-r", "Plugins", "-a", "can_read")
    engine = af.engine()
    with mock.patch.dict(os.environ, {"AIRFLOW_CONN_SOUNDCHARTS_DEFAULT": af.env["AIRFLOW_CONN_SOUNDCHARTS_DEFAULT"]}):
        charts.import_charts(engine, SoundchartsClient(max_attempts=2), "spotify")
    for slug in (GLOBAL_DAILY, US_DAILY):
        schedules.add_schedule(engine, charts.get_chart(engine, slug=slug), actor="fab-seed")
    services = start_airflow(af, components=("api-server",))
    try:
        yield Site(services, engine, {name: services.token(name) for name in ROLES})
    finally:
        stop_airflow(services)
        engine.dispose()


# -- the REST API ------------------------------------------------------------------------------------------
def test_every_role_reads_and_only_admin_and_op_write_through_the_api(airflow_site):
    site = airflow_site
    for user in ROLES:
        r = site.api("GET", "/schedules/", user)
        assert r.status_code == 200 and r.json()["total"] == 2, (user, r.status_code)
    sid = site.schedule(GLOBAL_DAILY).id
    chart_id = charts.get_chart(site.engine, slug=FR_DAILY).id
    # the read-only roles: 403 on every kind of write, nothing written
    for user in READERS:
        assert site.api("PATCH", f"/schedules/{sid}/", user, json={"deadline_hours": 99}).status_code == 403
        assert site.api("POST", "/schedules/", user, json={"chart_id": chart_id}).status_code == 403
        assert site.api("DELETE", f"/schedules/{sid}/", user).status_code == 403
        assert site.api("POST", "/schedules/bulk/", user,
                        json={"action": "deactivate", "chart_ids": [chart_id]}).status_code == 403
        assert site.api("POST", "/trigger/", user, json={"chart_id": chart_id}).status_code == 403
        assert site.api("POST", "/gaps/heal/", user, json={}).status_code == 403
    assert site.schedule(GLOBAL_DAILY).deadline_hours is None and site.schedule(FR_DAILY) is None
    assert site.actors() == {"fab-seed"}
    # Op and Admin write, under their own names
    r = site.api("PATCH", f"/schedules/{sid}/", "op", json={"deadline_hours": 7})
    assert r.status_code == 200, r.text
    assert site.schedule(GLOBAL_DAILY).deadline_hours == 7
    r = site.api("POST", "/schedules/", "op", json={"chart_id": chart_id, "sync_frequency": "daily"})
    assert r.status_code == 201, r.text
    assert site.schedule(FR_DAILY).sync_frequency == "daily"
    assert site.api("PATCH", f"/schedules/{sid}/", "admin", json={"deadline_hours": 8}).status_code == 200
    assert site.schedule(GLOBAL_DAILY).deadline_hours == 8
    assert site.actors() == {"fab-seed", "op", "admin"}
    # a trigger passes Op's access checks (DAG edit, DAG-run creation) and meets the unparsed DAG
    r = site.api("POST", "/trigger/", "op", json={"chart_id": chart_id})
    assert r.status_code == 409 and "not in Airflow yet" in r.text, r.text


def test_anonymous_api_requests_get_401(airflow_site):
    site = airflow_site
    sid = site.schedule(GLOBAL_DAILY).id
    for method, path, body in (("GET", "/schedules/", None), ("GET", f"/schedules/{sid}/", None),
                               ("PATCH", f"/schedules/{sid}/", {"deadline_hours": 1}),
                               ("POST", "/gaps/heal/", {})):
        assert site.api(method, path, json=body).status_code == 401, (method, path)
    assert site.schedule(GLOBAL_DAILY).deadline_hours == 8


# -- the pages ---------------------------------------------------------------------------------------------
def test_anonymous_pages_go_to_the_fab_login_and_back(airflow_site, new_session):
    site = airflow_site
    r = site.page("GET", "/schedules?status=active")
    assert r.status_code == 303
    assert r.headers["location"] == "/auth/login?next=%2Fchart-sync%2Fui%2Fschedules%3Fstatus%3Dactive"
    login = requests.get(site.api_url + r.headers["location"], timeout=60)  # FAB's form, at /auth/login/
    assert login.status_code == 200 and 'name="username"' in login.text and 'name="password"' in login.text
    session = new_session("viewer", landing=f"{UI}/schedules?status=active")  # FAB's form leads back
    assert session.page.locator("h1").first.inner_text() == "Sync schedules"


def test_only_admin_and_op_see_write_controls(airflow_site):
    site = airflow_site
    sid = site.schedule(US_DAILY).id
    for user, role in ROLES.items():
        for path in ("/charts", "/schedules", f"/schedules/{sid}"):
            r = site.page("GET", path, user)
            assert r.status_code == 200, (user, path, r.status_code)
            assert f"{user} · {role}" in r.text
            assert ('name="csrf_token"' in r.text) == (user in WRITERS), (user, path)
            assert ("read-only" in r.text) == (user in READERS), (user, path)
    # a reader's form POST, from this origin: refused before its token is looked at, nothing written
    before = site.schedule(US_DAILY)
    for user in READERS:
        r = site.page("POST", f"/schedules/{sid}/action", user, headers={"Origin": site.api_url},
                      data={"action": "deactivate", "confirmed": "1", "csrf_token": "0" * 64})
        assert r.status_code == 403 and "may read chart-sync but not change it" in r.text
    assert site.schedule(US_DAILY) == before


def _config_form(row, deadline: str, token: str | None) -> dict[str, str]:
    """The schedule page's configuration form as a browser sends it."""
    form = {"is_active": "on", "sync_frequency": row.sync_frequency, "deadline_hours": deadline,
            "sync_immediately": "on"}
    return form | ({"csrf_token": token} if token is not None else {})


def test_form_posts_without_the_token_or_from_another_origin_write_nothing(airflow_site):
    site = airflow_site
    row = site.schedule(US_DAILY)
    path = f"/schedules/{row.id}/config"
    page = site.page("GET", f"/schedules/{row.id}", "op")
    token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text).group(1)
    own = {"Origin": site.api_url}
    refused = (
        (None, own),  # no token
        ("0" * 64, own),  # a made-up token
        (token, {"Origin": "http://127.0.0.1:9"}),  # another origin (the same site: another port)
        (token, {"Referer": "https://evil.example/form"}),  # no Origin: the Referer's
    )
    for sent, headers in refused:
        r = site.page("POST", path, "op", headers=headers, data=_config_form(row, "30", sent))
        assert r.status_code == 403 and ("security token" in r.text or "another site" in r.text), (sent, headers)
    assert site.schedule(US_DAILY) == row
    # Op's own token from its own origin: saved
    r = site.page("POST", path, "op", headers=own, data=_config_form(row, "30", token))
    assert r.status_code == 303, r.text
    assert site.schedule(US_DAILY).deadline_hours == 30


# -- inside the Airflow UI, logged in through FAB's form ---------------------------------------------------
def _embedded(new_session, user: str, route: str):
    """A session logged in as ``user`` on the Airflow UI's page ``/plugin/<route>``, and its frame."""
    session = new_session(user, landing=f"/plugin/{route}")
    frame = session.page.frame_locator("iframe")
    frame.locator("h1").first.wait_for(timeout=60_000)
    return session, frame


def test_op_writes_inside_the_airflow_ui_and_the_viewer_sees_no_write_controls(airflow_site, new_session):
    site = airflow_site
    sid = site.schedule(US_DAILY).id
    session, frame = _embedded(new_session, "op", f"chart-sync-schedules{UI}/schedules/{sid}")
    assert frame.locator(".who").inner_text() == "op · Op"
    frame.get_by_label("Deadline").fill("31")
    frame.get_by_role("button", name="Save configuration").click()
    result(frame, "Configuration saved.")
    assert site.schedule(US_DAILY).deadline_hours == 31
    session.goto("/plugin/chart-sync-schedules")
    frame = session.page.frame_locator("iframe")
    frame.locator("tr", has_text=US_DAILY).get_by_role("button", name="Deactivate").click()
    assert confirm(frame).startswith("Deactivate ")
    result(frame, "Deactivate: 1 done.")
    assert not site.schedule(US_DAILY).is_active
    session.screenshot("fab-op-schedules-in-airflow-ui")
    session, frame = _embedded(new_session, "viewer", "chart-sync-schedules")
    assert frame.locator(".who").inner_text() == "viewer · Viewer · read-only"
    assert frame.locator("tr", has_text=US_DAILY).count() == 1
    assert frame.locator(WRITE_CONTROLS).count() == 0
    session.screenshot("fab-viewer-schedules-in-airflow-ui")


def test_the_airflow_ui_embeds_the_pages_for_roles_that_may_read_plugins(airflow_site):
    """The UI finds external views through /api/v2/plugins, which FAB gives to Op and Admin only (can read on
    Plugins): stock Viewer and User roles see no chart-sync entry in the UI, though the pages answer them."""
    site = airflow_site
    for user in ROLES:
        r = requests.get(f"{site.api_url}/api/v2/plugins", headers={"Authorization": f"Bearer {site.tokens[user]}"},
                         timeout=60)
        assert r.status_code == (403 if user == "user" else 200), (user, r.status_code)
        if r.status_code == 200:
            views = [v["url_route"] for p in r.json()["plugins"] for v in p["external_views"]]
            assert "chart-sync-schedules" in views
    assert site.page("GET", "/schedules", "user").status_code == 200
