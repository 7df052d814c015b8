"""SQLite busy: another connection holds the write lock (``BEGIN IMMEDIATE``) for longer than
the busy timeout while ingestion or a sync writes. Ingestion answers 503 with Retry-After and a
message saying so, the API the same in its error body, a sync run stops at its last checkpoint;
the file stays sound, and once the lock is gone the same request, or the run's resume, succeeds.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine

from cohortsync.domain.accounts import Project
from cohortsync.domain.sync_status import RunStatus
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.storage.database import read_transaction
from cohortsync.warehouse.events import count_events
from tests.conftest import LiveServer
from tests.faults.conftest import (
    WriteLock,
    assert_list_is_the_cohort,
    integrity,
    once,
    played,
    pro_export,
    resumed,
)
from tests.helpers import admin_token
from tests.sync.world import SyncWorld

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _stored(engine: Engine, project: Project) -> int:
    with read_transaction(engine) as connection:
        return count_events(connection, project.id)


def test_ingestion_behind_a_held_lock_answers_503_then_stores_the_retry(
    live_server: LiveServer, project: Project, engine: Engine, write_lock: WriteLock
) -> None:
    json = {"Content-Type": "application/json"}
    with live_server.client() as client:
        first = client.post("/track?verbose=1", content=played(project, "a", 5), headers=json)
        assert first.status_code == 200, first.text
        write_lock.hold()
        refused = client.post("/track?verbose=1", content=played(project, "b", 5), headers=json)
        terse = client.post("/track", content=played(project, "b", 5), headers=json)
        assert integrity(engine) == "ok"
        write_lock.release()
        retried = client.post("/track?verbose=1", content=played(project, "b", 5), headers=json)

    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"].isdigit()
    body: dict[str, Any] = refused.json()
    assert body["status"] == 0 and "locked by another writer" in body["error"]
    assert "Traceback" not in refused.text and "sqlite" not in refused.text.lower()
    assert terse.status_code == 503 and terse.text == "0" and "Retry-After" in terse.headers
    assert retried.status_code == 200, retried.text
    assert _stored(engine, project) == 10  # both acknowledged batches, nothing else
    assert integrity(engine) == "ok"


def test_an_api_write_behind_a_held_lock_is_a_503_in_the_error_body(
    live_server: LiveServer, project: Project, engine: Engine, write_lock: WriteLock
) -> None:
    token = admin_token(engine, project.id)
    cohort = {"name": "Pro", "definition": {"property": "plan", "op": "equals", "value": "pro"}}
    path = f"/api/v1/projects/{project.id}/cohorts"
    with live_server.client(headers={"Authorization": f"Bearer {token}"}) as client:
        write_lock.hold()
        refused = client.post(path, json=cohort)
        write_lock.release()
        created = client.post(path, json=cohort)

    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"].isdigit()
    assert refused.json()["error"]["code"] == "database_busy"
    assert created.status_code == 201, created.text
    assert integrity(engine) == "ok"


def test_a_sync_behind_a_held_lock_stops_at_its_checkpoint_and_resumes(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox], write_lock: WriteLock
) -> None:
    sandbox = sandboxes["webhook"]
    sync_id, cohort_id = pro_export(world, sandbox, 30)
    runner = world.runner(once(write_lock.hold), batch_size=10)

    stopped = runner.run(sync_id)

    assert stopped.status == RunStatus.RUNNING  # not finished: it could not write
    assert stopped.counts.added == 10  # the first batch, acknowledged before the lock
    assert integrity(world.engine) == "ok"
    write_lock.release()
    run = resumed(world, runner, stopped)
    assert run.counts.added == 30 and run.counts.resent == 10  # the batch in flight, again
    assert_list_is_the_cohort(world, sandbox, sync_id, cohort_id)
    assert integrity(world.engine) == "ok"
