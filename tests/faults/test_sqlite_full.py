"""SQLite disk full (SQLITE_FULL, made real with ``PRAGMA max_page_count``): ingestion answers 503
with a message saying the disk is full and no traceback, a sync run stops at its last
checkpoint; nothing acknowledged is lost, the file stays sound, and once space returns the same
request, or the run's resume, succeeds."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from cohortsync.domain.accounts import Project
from cohortsync.domain.sync_status import RunStatus
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.storage.database import read_transaction
from cohortsync.warehouse.events import count_events
from tests.conftest import LiveServer
from tests.faults.conftest import (
    DiskQuota,
    assert_list_is_the_cohort,
    integrity,
    once,
    played,
    pro_export,
    resumed,
)
from tests.sync.world import SyncWorld

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

BATCH = 200  # events a request: enough to need new pages


def _events(project: Project, prefix: str) -> bytes:
    return played(project, prefix, BATCH, level="a long enough game to fill a page or two")


def test_ingestion_on_a_full_disk_answers_503_and_stores_the_retry(
    live_server: LiveServer, project: Project, engine: Engine, disk: DiskQuota
) -> None:
    json = {"Content-Type": "application/json"}
    with live_server.client() as client:
        first = client.post("/track?verbose=1", content=_events(project, "a"), headers=json)
        disk.full = True
        refused = client.post("/track?verbose=1", content=_events(project, "b"), headers=json)
        assert integrity(engine) == "ok"
        disk.full = False
        retried = client.post("/track?verbose=1", content=_events(project, "b"), headers=json)

    assert first.status_code == 200, first.text
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"].isdigit()
    assert "disk is full" in refused.json()["error"]
    assert "Traceback" not in refused.text and "sqlite" not in refused.text.lower()
    assert retried.status_code == 200, retried.text
    with read_transaction(engine) as connection:
        assert count_events(connection, project.id) == 2 * BATCH  # every acknowledged event
    assert integrity(engine) == "ok"


def test_a_sync_on_a_full_disk_stops_at_its_checkpoint_and_resumes_once_space_returns(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox], disk: DiskQuota
) -> None:
    sandbox = sandboxes["webhook"]
    sync_id, cohort_id = pro_export(world, sandbox, 300)
    runner = world.runner(once(lambda: setattr(disk, "full", True)), batch_size=100)

    stopped = runner.run(sync_id)

    assert stopped.status == RunStatus.RUNNING  # not finished: it could not write
    assert stopped.counts.added == 100  # the first batch, acknowledged before the disk filled
    assert integrity(world.engine) == "ok"
    disk.full = False
    assert resumed(world, runner, stopped).counts.added == 300
    assert_list_is_the_cohort(world, sandbox, sync_id, cohort_id)
    assert integrity(world.engine) == "ok"
