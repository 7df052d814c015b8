"""SQLite busy: another connection holds the write lock (``BEGIN IMMEDIATE``) for longer than
the busy timeout while ingestion or a sync writes. Ingestion answers 503 with Retry-After and a
message saying so, the API the same in its error body, a sync run stops at its last checkpoint;
the file stays sound, and once the lock is gone the same request, or the run's resume, succeeds.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from sqlalchemy.engine import Engine

from cohortsync.domain.accounts import Project
from cohortsync.domain.sync_status import RunStatus
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.storage.database import read_transaction
from cohortsync.warehouse.events import count_events
from tests.conftest import LiveServer
from tests.faults.conftest import WriteLock, integrity, once, resume_after_lease
from tests.helpers import admin_token
from tests.sync.world import SyncWorld

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _events(project: Project, prefix: str, count: int) -> bytes:
    now = int(time.time())
    return orjson.dumps(
        [
            {
                "event": "Played",
                "properties": {
                    "token": project.token,
                    "distinct_id": f"user-{i}",
                    "time": now,
                    "$insert_id": f"{prefix}-{i}",
                },
            }
            for i in range(count)
        ]
    )


def _stored(engine: Engine, project: Project) -> int:
    with read_transaction(engine) as connection:
        return count_events(connection, project.id)


def test_ingestion_behind_a_held_lock_answers_503_then_stores_the_retry(
    live_server: LiveServer, project: Project, engine: Engine, write_lock: WriteLock
) -> None:
    json = {"Content-Type": "application/json"}
    with live_server.client() as client:
        first = client.post("/track?verbose=1", content=_events(project, "a", 5), headers=json)
        assert first.status_code == 200, first.text
        write_lock.hold()
        refused = client.post("/track?verbose=1", content=_events(project, "b", 5), headers=json)
        terse = client.post("/track", content=_events(project, "b", 5), headers=json)
        assert integrity(engine) == "ok"
        write_lock.release()
        retried = client.post("/track?verbose=1", content=_events(project, "b", 5), headers=json)

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
    world.users(30, plan="pro")
    cohort_id = world.cohort("Pro", {"property": "plan", "op": "equals", "value": "pro"})
    sync = world.service().export(world.project.id, cohort_id, world.connect(sandbox), "dynamic")
    runner = world.runner(once(write_lock.hold), batch_size=10)

    stopped = runner.run(sync.id)

    assert stopped.status == RunStatus.RUNNING  # not finished: it could not write
    assert stopped.counts.added == 10  # the first batch, acknowledged before the lock
    assert integrity(world.engine) == "ok"
    write_lock.release()
    assert resume_after_lease(world, runner) == [sync.id]
    [run] = world.service().runs(world.project.id, sync.id)
    assert run.id == stopped.id and run.status == RunStatus.SUCCEEDED, run.error
    assert run.counts.added == 30 and run.counts.resent == 10  # the batch in flight, again
    expected, _ = world.expected("webhook", cohort_id)
    name = world.service().get(world.project.id, sync.id).list_name
    assert name is not None
    assert sandbox.state.members(name) == expected == world.acknowledged(sync.id)
    assert integrity(world.engine) == "ok"
