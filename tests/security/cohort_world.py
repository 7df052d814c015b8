"""A live service per engine for the cohort findings of issue 15: one project with an admin and a
member (bearer tokens, also usable as the pages' session cookie), two profiles, a cohort
exported dynamically to an integration connected to the Iterable emulator on loopback.

Module-scoped: a test module pays for the server, the people and the export once per engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
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
from tests.sync.test_api import PRO, connect, create_cohort, engage, export

ADMIN = "admin@cohorts.example"
MEMBER = "member@cohorts.example"
PASSWORD = "correct horse battery staple"


@dataclass
class CohortWorld:
    """The served project, its people and its exported cohort."""

    server: LiveServer
    project: Project
    sandbox: RunningSandbox
    tokens: dict[str, str]  # "admin" / "member" → bearer token
    cohort_id: int  # exported by sync_id
    integration_id: int
    sync_id: int

    @property
    def engine(self) -> Engine:
        """The engine the server writes with."""
        return self.server.engine

    def client(self, who: str = "admin") -> httpx.Client:
        """A client as ``who``: bearer token for the API, session cookie and CSRF header for
        the pages; redirects are not followed."""
        token = self.tokens[who]
        headers = {"Authorization": f"Bearer {token}", CSRF_HEADER: csrf_for(token)}
        return httpx.Client(
            base_url=self.server.url, timeout=30, headers=headers, cookies={COOKIE: token}
        )

    def new_cohort(self, name: str) -> int:
        """A cohort nobody exports, made by the admin."""
        with self.client() as api:
            return create_cohort(api, self.project, name, PRO)

    def new_integration(self) -> int:
        """Another integration connected to the emulator."""
        with self.client() as api:
            return connect(api, self.project, self.sandbox)


@pytest.fixture(scope="module", params=ENGINES)
def cohort_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CohortWorld]:
    """The service on one engine, served on loopback for the whole module."""
    database_url = empty_database_url(request, tmp_path_factory.mktemp("cohort-world"))
    engine = create_engine(database_url)
    clock = FrozenClock(SystemClock().now())
    project, _ = ProjectService(engine, clock).ensure_default()
    people = AccountService(engine, clock)
    tokens = {}
    for who, email, role in (("admin", ADMIN, Role.ADMIN), ("member", MEMBER, Role.MEMBER)):
        people.create_user(email, PASSWORD, role, project.id)
        tokens[who] = people.create_token(email)
    settings = Settings.model_validate(
        {
            "database_url": database_url,
            "secret_key": TEST_KEY,
            "allow_custom_endpoints": True,  # the integration points at the loopback emulator
            "allow_private_endpoints": True,
        }
    )
    app = create_app(settings, engine=engine, clock=clock)
    sandbox = start_sandbox("iterable")
    try:
        with serving(app) as url:
            server = LiveServer(url, engine, clock)
            engage(server, project, {"ana": {"plan": "pro"}, "ben": {"plan": "free"}})
            world = CohortWorld(server, project, sandbox, tokens, 0, 0, 0)
            world.cohort_id = world.new_cohort("Pro users")
            world.integration_id = world.new_integration()
            with world.client() as api:
                exported = export(api, project, world.cohort_id, world.integration_id, "dynamic")
                world.sync_id = exported["id"]
            yield world
    finally:
        sandbox.server.stop()
        engine.dispose()
