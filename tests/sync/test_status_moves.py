"""Statuses move only as their tables allow, in the database itself: an ended run stays ended,
a stopped sync is never marked finished, a disconnected integration stays disconnected."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.engine import Engine

from cohortsync.domain.accounts import Project
from cohortsync.domain.integrations import IntegrationStatus
from cohortsync.domain.status_moves import IllegalMove
from cohortsync.domain.sync_status import RunStatus, RunTrigger, SyncMode, SyncStatus
from cohortsync.domain.syncs import RunCounts
from cohortsync.storage.database import write_transaction
from cohortsync.storage.integration_store import IntegrationStore
from cohortsync.storage.sync_store import SyncStore
from tests.sync.world import SyncWorld

NOW = datetime.fromisoformat("2026-11-20T12:00:00+00:00")


def _integration(engine: Engine, project: Project) -> int:
    with write_transaction(engine) as connection:
        return IntegrationStore(connection).insert(
            {
                "project_id": project.id,
                "type": "webhook",
                "name": "Hook",
                "credentials": "sealed",
                "settings": {},
                "status": IntegrationStatus.CONNECTED,
                "created_at": NOW,
                "updated_at": NOW,
            }
        )


def _sync(world: SyncWorld, integration_id: int) -> int:
    cohort_id = world.cohort("Pro", {"property": "plan", "op": "equals", "value": "pro"})
    with write_transaction(world.engine) as connection:
        return SyncStore(connection).insert(
            {
                "project_id": world.project.id,
                "cohort_id": cohort_id,
                "integration_id": integration_id,
                "mode": SyncMode.ONE_TIME,
                "status": SyncStatus.ACTIVE,
                "interval_seconds": 900,
                "next_run_at": NOW,
                "created_at": NOW,
                "updated_at": NOW,
            }
        )


def test_an_ended_run_cannot_start_again(world: SyncWorld) -> None:
    sync_id = _sync(world, _integration(world.engine, world.project))
    with write_transaction(world.engine) as connection:
        store = SyncStore(connection)
        run = store.insert_run(
            {
                "sync_id": sync_id,
                "trigger": RunTrigger.MANUAL,
                "session_id": "s",
                "as_of_ms": 0,
                "started_at": NOW,
                "counts": RunCounts().as_json(),
            }
        )
        store.move_run(run.id, RunStatus.RUNNING)
        store.move_run(run.id, RunStatus.FAILED, finished_at=NOW)
        with pytest.raises(IllegalMove, match="from failed to running"):
            store.move_run(run.id, RunStatus.RUNNING)
        assert store.get_run(run.id).status is RunStatus.FAILED
        with pytest.raises(ValueError, match="move_run"):
            store.update_run(run.id, status=RunStatus.RUNNING)


def test_a_stopped_sync_is_never_marked_finished(world: SyncWorld) -> None:
    sync_id = _sync(world, _integration(world.engine, world.project))
    with write_transaction(world.engine) as connection:
        store = SyncStore(connection)
        assert store.move(sync_id, SyncStatus.STOPPED, {"next_run_at": None})
        assert not store.move(sync_id, SyncStatus.FINISHED, {})
        assert store.get(sync_id, NOW).status is SyncStatus.STOPPED
        assert store.move(sync_id, SyncStatus.ACTIVE, {})  # a re-export
        assert store.get(sync_id, NOW).status is SyncStatus.ACTIVE


def test_a_disconnected_integration_stays_disconnected(engine: Engine, project: Project) -> None:
    integration_id = _integration(engine, project)
    with write_transaction(engine) as connection:
        store = IntegrationStore(connection)
        assert store.move(integration_id, IntegrationStatus.DISCONNECTED, {})
        for status in (IntegrationStatus.CONNECTED, IntegrationStatus.ERROR):
            assert not store.move(integration_id, status, {"error": "x"})
        assert store.get(project.id, integration_id).status is IntegrationStatus.DISCONNECTED
