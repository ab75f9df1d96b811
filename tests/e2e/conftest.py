"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, for the admin pages' browser tests.

``npx playwright install`` cannot download a browser here; pip's ``playwright`` drives the system
Chromium with the flags this machine needs (no sandbox as root, no background networking, which the
closed network would refuse). Playwright gives every launch a fresh, empty profile directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError

CHROMIUM = os.environ.get("CHARTSYNC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Session:
    """One browser context (its own cookies) logged in through Airflow's real login form."""

    def __init__(self, browser, base_url: str, *, javascript: bool = True, storage_state=None) -> None:
        self.base_url = base_url
        self.context = browser.new_context(base_url=base_url, viewport=DESKTOP, java_script_enabled=javascript,
                                           storage_state=storage_state)
        self.context.set_default_timeout(30_000)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.page.on("dialog", self._accept)

    def _accept(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.accept()

    def login(self, user: str, password: str, landing: str = "/chart-sync/ui/charts") -> None:
        """Open a page, get sent to Airflow's login, sign in, and come back to it."""
        self.page.goto(landing)
        self._arrive(re.compile(r"/auth/login"))
        self.page.get_by_label(re.compile("username", re.I)).fill(user)
        self.page.get_by_label(re.compile("password", re.I)).fill(password)
        self.page.get_by_role("button", name=re.compile("sign in|log in|login", re.I)).click()
        self._arrive(f"**{landing}")

    def _arrive(self, url, attempts: int = 3) -> None:
        """Wait until the page is at ``url``. The redirects to and from the login pass through the Airflow UI's
        own router, which may abort one navigation for the next (net::ERR_ABORTED): then the wait starts over,
        and ends at once if the page is there already."""
        for attempt in range(attempts):
            try:
                self.page.wait_for_url(url)
                return
            except PlaywrightError:
                if attempt == attempts - 1:
                    raise

    def goto(self, path: str):
        response = self.page.goto(path)
        assert response is not None
        return response

    def screenshot(self, name: str) -> None:
        """The current page at 1280 px and at 390 px (a phone), full length."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for label, size in (("1280", DESKTOP), ("390", PHONE)):
            self.page.set_viewport_size(size)
            self.page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
        self.page.set_viewport_size(DESKTOP)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def new_session(browser, airflow_site) -> Iterator:
    sessions: list[Session] = []

    def make(user: str | None = None, *, javascript: bool = True, landing: str = "/chart-sync/ui/charts"):
        """A browser session, logged in as ``user`` (password = user name) when given.

        Airflow's login page is a React app, so a session without JavaScript takes the cookie of
        one that logged in with it."""
        if not javascript:
            donor = make(user, landing=landing)
            session = Session(browser, airflow_site.api_url, javascript=False,
                              storage_state=donor.context.storage_state())
            sessions.append(session)
            session.goto(landing)
            return session
        session = Session(browser, airflow_site.api_url)
        sessions.append(session)
        if user is not None:
            session.login(user, user, landing)
        return session

    yield make
    for session in sessions:
        session.close()
