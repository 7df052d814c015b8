"""Browser fixtures: Debian's Chromium driven by Playwright against the live server, on SQLite.

Every page a test opens is watched: a console error or an uncaught exception fails the test.
Screenshots go to ``$COHORTSYNC_SCREENSHOTS`` (default ``build/screenshots``). Without Chromium the
browser tests are skipped, unless ``COHORTSYNC_REQUIRE_BROWSER=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from cohortsync.domain.accounts import Project, Role
from cohortsync.web.session import COOKIE, csrf_for
from tests.conftest import LiveServer
from tests.helpers import accounts, admin_token, run_async

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"
ADMIN = "admin@example.com"
MEMBER = "analyst@example.com"
SCREENSHOTS = Path(os.environ.get("COHORTSYNC_SCREENSHOTS", "build/screenshots"))
REQUIRE_BROWSER = "COHORTSYNC_REQUIRE_BROWSER"

# Each test module's pytestmark: the browser tests run on SQLite only (the services they call
# are covered on PostgreSQL by their own tests).
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def require_chromium(chromium: Path = CHROMIUM) -> None:
    """Skip the browser tests when Chromium is missing, or fail them where the environment
    says they must run (``COHORTSYNC_REQUIRE_BROWSER=1``, as CI does)."""
    if chromium.exists():
        return
    why = (
        f"{chromium} is missing "
        "(`make test` installs Debian's chromium with apt-get when run as root)"
    )
    if os.environ.get(REQUIRE_BROWSER, "") not in ("", "0"):
        pytest.fail(f"browser tests cannot run: {why}; {REQUIRE_BROWSER} is set")
    pytest.skip(f"browser tests skipped: {why}")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium (never a downloaded browser)."""
    require_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Console:
    """Console errors and uncaught exceptions of every page of a test."""

    problems: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        """Record what goes wrong on ``page``."""
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text} ({message.location})")


@dataclass
class Browsing:
    """A signed-out browser on the live server, with its console watched."""

    server: LiveServer
    context: BrowserContext
    page: Page
    console: Console

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        """Sign in through the login form."""
        self.page.goto("/login")
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(re.compile(r"/projects/\d+/cohorts$"))

    def csrf(self) -> str:
        """The CSRF token the page's forms carry."""
        token = self.page.locator("input[name=csrf_token]").first.get_attribute("value")
        assert token, "the page has no CSRF token"
        return token

    def cookies(self) -> dict[str, str]:
        """The browser's cookies, for posting outside the page."""
        return {c["name"]: c["value"] for c in self.context.cookies() if "name" in c}

    def post(self, path: str, data: dict[str, str], **headers: str) -> httpx.Response:
        """POST a form as this browser would, with its cookies (not through a page's UI)."""
        with self.server.client(cookies=self.cookies()) as client:
            return client.post(path, data=data, headers=headers)

    def shoot(self, name: str) -> None:
        """Save a screenshot of the whole page as a test artifact."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


@pytest.fixture
def browsing(browser: Browser, live_server: LiveServer) -> Iterator[Browsing]:
    """A fresh browser context on the live server; fails the test on console errors."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    console = Console()
    console.watch(page)
    yield Browsing(live_server, context, page, console)
    context.close()
    assert console.problems == [], "\n".join(console.problems)


@pytest.fixture
def people(live_server: LiveServer, project: Project) -> Project:
    """An admin and a member of the project, both with PASSWORD."""
    service = accounts(live_server.engine, live_server.clock)
    service.create_user(ADMIN, PASSWORD, Role.ADMIN, project.id)
    service.create_user(MEMBER, PASSWORD, Role.MEMBER, project.id)
    return project


@pytest.fixture
def admin_api(live_server: LiveServer, people: Project) -> Iterator[httpx.Client]:
    """The JSON API as the project's admin: setting the scene a browser test starts from."""
    token = admin_token(live_server.engine, people.id, ADMIN)
    with live_server.client(headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


@dataclass
class Signed:
    """A signed-in HTTP client (no browser): its session cookie and the CSRF token of it."""

    client: httpx.Client
    csrf: str


def sign_in_http(server: LiveServer, email: str, password: str = PASSWORD) -> Signed:
    """Sign in through ``POST /login`` as a browser form would, keeping the session cookie."""
    client = server.client()
    answer = client.post("/login", data={"email": email, "password": password})
    assert answer.status_code == 303, answer.text
    return Signed(client, csrf_for(client.cookies[COOKIE]))


@pytest.fixture
def admin_http(live_server: LiveServer, people: Project) -> Iterator[Signed]:
    """The project's admin, signed in over plain HTTP."""
    signed = sign_in_http(live_server, ADMIN)
    yield signed
    signed.client.close()


def in_process(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request to ``app`` in this process (no server, no lifespan), as from
    ``http://cohorts.example``: for apps built with settings the live server does not use."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cohorts.example") as c:
            return await c.request(method, path, **kwargs)

    return run_async(send())
