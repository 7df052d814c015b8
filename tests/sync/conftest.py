"""Fixtures of sync tests: a world of users and integrations over the test database."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.engine import Engine

from cohortsync.clock import FrozenClock
from cohortsync.domain.accounts import Project
from tests.conftest import LiveServer
from tests.helpers import admin_token
from tests.integrations.test_api import member_token
from tests.sync.world import SyncWorld, make_world


@pytest.fixture
def world(engine: Engine, clock: FrozenClock, project: Project) -> SyncWorld:
    """Users, cohorts and integrations on the sandboxes, over SQLite (and PostgreSQL)."""
    return make_world(engine, clock, project)


@pytest.fixture
def admin(live_server: LiveServer, project: Project) -> httpx.Client:
    """An HTTP client signed in as a project admin."""
    token = admin_token(live_server.engine, project.id)
    return live_server.client(headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def member(live_server: LiveServer, project: Project) -> httpx.Client:
    """An HTTP client signed in as a (non-admin) project member."""
    token = member_token(live_server, project)
    return live_server.client(headers={"Authorization": f"Bearer {token}"})
