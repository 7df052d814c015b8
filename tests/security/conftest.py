"""A populated service per engine for the security suites: one live server on loopback with two
projects, an admin and a member of the first, an admin of the second, and real objects to aim
at (profiles, a cohort, an integration connected to a loopback emulator, a sync with one run).

The world is module-scoped (one server per engine per test module), so the route matrix, the
Schemathesis run and the cohort-export guards each pay for setting it up once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from cohortsync.app import create_app
from cohortsync.clock import FrozenClock, SystemClock
from cohortsync.domain.accounts import Project, Role
from cohortsync.sandbox.fleet import RunningSandbox, start_sandbox
from cohortsync.services.accounts import AccountService
from cohortsync.services.projects import ProjectService
from cohortsync.settings import Settings
from cohortsync.storage.database import create_engine
from cohortsync.web.session import COOKIE, CSRF_HEADER, csrf_for
from tests.conftest import ENGINES, TEST_KEY, LiveServer, empty_database_url, serving
from tests.helpers import accounts as test_accounts
from tests.sync.test_api import PRO, connect, create_cohort, engage, export, syncs_url, wait_for

PASSWORD = "correct horse battery staple"
ADMIN = "admin@a.example"
MEMBER = "member@a.example"
OTHER_ADMIN = "admin@b.example"
PARTNER = "iterable"  # the emulator every integration of the world points at
PERSON = "ana"  # a profile that exists


@dataclass
class Caller:
    """Someone calling the service: a bearer token for the API, the same token as the web
    session cookie with its CSRF token for the pages (None: anonymous)."""

    name: str
    email: str | None
    token: str | None

    def headers(self) -> dict[str, str]:
        """Authorization and CSRF headers (none for anonymous)."""
        if self.token is None:
            return {}
        return {"Authorization": f"Bearer {self.token}", CSRF_HEADER: csrf_for(self.token)}

    def cookies(self) -> dict[str, str]:
        """The session cookie (none for anonymous)."""
        return {} if self.token is None else {COOKIE: self.token}


@dataclass
class SecurityWorld:
    """The populated service of one engine."""

    engine_name: str
    app: FastAPI
    server: LiveServer
    project: Project
    other_project: Project
    sandbox: RunningSandbox
    accounts: AccountService
    callers: dict[str, Caller]
    cohort_id: int
    integration_id: int
    sync_id: int
    run_id: int

    @property
    def url(self) -> str:
        """The live server's base URL."""
        return self.server.url

    @property
    def engine(self) -> Engine:
        """The engine the server writes with."""
        return self.server.engine

    def client(self, caller: Caller | None = None) -> httpx.Client:
        """An HTTP client for the server, as ``caller`` (the project's admin by default);
        redirects are not followed, so a redirect to the login page is seen as such."""
        who = caller or self.callers["admin"]
        return httpx.Client(
            base_url=self.url, timeout=30, headers=who.headers(), cookies=who.cookies()
        )

    def fresh_token(self, caller: Caller) -> Caller:
        """The same person with a token of their own for one request (sign-out revokes it)."""
        if caller.email is None:
            return caller
        return Caller(caller.name, caller.email, self.accounts.create_token(caller.email))

    def new_cohort(self, name: str) -> int:
        """A cohort nobody exports, made by the admin."""
        with self.client() as api:
            return create_cohort(api, self.project, name, PRO)

    def new_integration(self) -> int:
        """Another integration connected to the emulator, made by the admin."""
        with self.client() as api:
            return connect(api, self.project, self.sandbox)

    def new_sync(self, name: str) -> int:
        """A dynamic export of a new cohort to a new integration, made by the admin."""
        cohort_id = self.new_cohort(name)
        integration_id = self.new_integration()
        with self.client() as api:
            sync_id: int = export(api, self.project, cohort_id, integration_id, "dynamic")["id"]
        return sync_id


def _person(
    accounts: AccountService, name: str, email: str, role: Role, project: Project
) -> Caller:
    accounts.create_user(email, PASSWORD, role, project.id)
    return Caller(name, email, accounts.create_token(email))


def _settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=SecretStr(TEST_KEY),
        allow_custom_endpoints=True,  # integrations point at the loopback emulator
        allow_private_endpoints=True,  # ... which the outbound guard refuses otherwise
        ingest_processes=0,
        # Runs asked for go on this process's threads (served with lifespan off: nothing ticks);
        # without it, PostgreSQL would hand them to queue workers this test does not start.
        scheduler=True,
    )


def _first_run(api: httpx.Client, project: Project, sync_id: int) -> int:
    started = api.post(syncs_url(project, f"/{sync_id}/run"))
    assert started.status_code == 202, started.text
    run_id: int = wait_for(api, project, sync_id, started.json()["id"])["id"]
    return run_id


@pytest.fixture(scope="module", params=ENGINES)
def security_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecurityWorld]:
    """The populated service on one engine, served on loopback for the whole module."""
    database_url = empty_database_url(request, tmp_path_factory.mktemp("security"))
    engine: Engine = create_engine(database_url)
    clock = FrozenClock(SystemClock().now())
    projects = ProjectService(engine, clock)
    project, _ = projects.ensure_default()
    other_project = projects.create("Other team")
    accounts = test_accounts(engine, clock)
    callers = {
        "anonymous": Caller("anonymous", None, None),
        "admin": _person(accounts, "admin", ADMIN, Role.ADMIN, project),
        "member": _person(accounts, "member", MEMBER, Role.MEMBER, project),
        "other_admin": _person(accounts, "other_admin", OTHER_ADMIN, Role.ADMIN, other_project),
    }
    sandbox = start_sandbox(PARTNER)
    app = create_app(_settings(database_url), engine=engine, clock=clock)
    try:
        with serving(app) as url:
            server = LiveServer(url, engine, clock)
            engage(server, project, {PERSON: {"plan": "pro"}, "ben": {"plan": "free"}})
            with httpx.Client(base_url=url, timeout=30, headers=callers["admin"].headers()) as api:
                cohort_id = create_cohort(api, project, "Pro users", PRO)
                integration_id = connect(api, project, sandbox)
                sync: dict[str, Any] = export(api, project, cohort_id, integration_id, "dynamic")
                run_id = _first_run(api, project, sync["id"])
            yield SecurityWorld(
                engine_name=request.param,
                app=app,
                server=server,
                project=project,
                other_project=other_project,
                sandbox=sandbox,
                accounts=accounts,
                callers=callers,
                cohort_id=cohort_id,
                integration_id=integration_id,
                sync_id=sync["id"],
                run_id=run_id,
            )
    finally:
        app.state.cohortsync.close()  # runs still going end before the database goes
        sandbox.server.stop()
        engine.dispose()
