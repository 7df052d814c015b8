"""Fixtures of sync tests: a world of users and integrations over the test database."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from cohortsync.clock import FrozenClock
from cohortsync.domain.accounts import Project
from tests.sync.world import SyncWorld, make_world


@pytest.fixture
def world(engine: Engine, clock: FrozenClock, project: Project) -> SyncWorld:
    """Users, cohorts and integrations on the sandboxes, over SQLite (and PostgreSQL)."""
    return make_world(engine, clock, project)
