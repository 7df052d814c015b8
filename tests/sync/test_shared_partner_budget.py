"""Two integrations on one Iterable API key, synced at once from two separate processes on
PostgreSQL: their requests share the account's budget through the database, so the emulator
never sees more than Iterable's 5 requests in any one second (SPEC R-SYN-6), and both lists end
up equal to their cohorts."""

from __future__ import annotations

import multiprocessing
from datetime import datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

import pytest

from cohortsync.domain.accounts import Project
from cohortsync.keyring import Keyring
from cohortsync.partners.iterable.destination import CAPABILITIES
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.integrations import IntegrationService
from cohortsync.storage.database import create_engine
from tests.conftest import TEST_KEY
from tests.destinations.test_shared_budgets import most_in_one_second
from tests.sync.world import SyncWorld

pytestmark = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing shared but the database
MEMBERS = 24  # of each cohort
BATCH = 3  # members a request: eight subscribe calls a run, and a few more


def _sync_in_a_process(
    url: str,
    key: str,
    now: datetime,
    project: Project,
    sync_id: int,
    said: Queue[object],
    go: Event,
) -> None:
    """Run the sync once, in this process of its own, when the parent says go."""
    from cohortsync.clock import FrozenClock

    engine = create_engine(url)
    clock = FrozenClock(now)
    integrations = IntegrationService(
        engine,
        Keyring([key]),
        clock,
        allow_custom_endpoints=True,
        allow_private_endpoints=True,
        timeout=5.0,
    )
    world = SyncWorld(engine, clock, project, IngestionService(engine, clock), integrations)
    service = world.service(world.runner(batch_size=BATCH))
    said.put("ready")
    go.wait(60)
    run = service.run_now(project.id, sync_id)
    said.put((sync_id, str(run.status), run.error))
    engine.dispose()


def test_two_integrations_on_one_api_key_never_exceed_its_rate_together(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox], database_url: str
) -> None:
    sandbox = sandboxes["iterable"]
    syncs: dict[int, int] = {}  # sync id: cohort id
    for group in ("a", "b"):
        world.users(MEMBERS, prefix=f"{group}-", group=group)
        in_group = {"property": "group", "op": "equals", "value": group}
        cohort_id = world.cohort(f"Group {group}", in_group)
        integration_id = world.connect(sandbox)  # the same API key both times
        sync = world.service().export(world.project.id, cohort_id, integration_id, "dynamic")
        syncs[sync.id] = cohort_id

    said: Queue[object] = SPAWN.Queue()
    go = SPAWN.Event()
    processes = [
        SPAWN.Process(
            target=_sync_in_a_process,
            args=(database_url, TEST_KEY, world.clock.now(), world.project, sync_id, said, go),
        )
        for sync_id in syncs
    ]
    for process in processes:
        process.start()
    try:
        assert [said.get(timeout=60) for _ in processes] == ["ready", "ready"]
        go.set()
        ended = {said.get(timeout=120) for _ in processes}
    finally:
        for process in processes:
            process.join(30)
            process.kill()

    assert ended == {(sync_id, "succeeded", None) for sync_id in syncs}
    runs = [call for call in sandbox.state.calls if call.run is not None]
    assert len({call.run for call in runs}) == 2
    assert len(runs) >= 2 * MEMBERS // BATCH  # enough calls for the rule to mean something
    assert CAPABILITIES.requests_per_second == 5
    assert most_in_one_second([call.start for call in runs]) <= 5
    for sync_id, cohort_id in syncs.items():
        expected, _ = world.expected("iterable", cohort_id)
        name = world.service().get(world.project.id, sync_id).list_name
        assert name is not None and sandbox.state.members(name) == expected
