"""Blocked runs (R-SYN-8) and one run per sync at a time.

A failed or empty evaluation, or a mass removal, against a 10,000-member list sends no removal
and waits for an admin; the confirm is audited and then the run proceeds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.domain.errors import Conflict
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.storage.database import read_transaction
from cohortsync.storage.tables import audit_log
from cohortsync.sync.plan import cohort_members
from cohortsync.sync.scheduler import SyncScheduler
from tests.sync.world import SyncWorld

PLAN_PRO = {"property": "plan", "op": "equals", "value": "pro"}
LIST_SIZE = 10_000


@pytest.fixture
def synced(world: SyncWorld, sandboxes: dict[str, RunningSandbox]) -> tuple[int, RunningSandbox]:
    """A dynamic sync whose first run put 10,000 members on an Xtremepush list."""
    sandbox = sandboxes["xtremepush"]
    world.users(LIST_SIZE, plan="pro")
    cohort_id = world.cohort("Pro", PLAN_PRO)
    integration_id = world.connect(sandbox)
    sync = world.service().export(world.project.id, cohort_id, integration_id, "dynamic")
    first = world.service().run_now(world.project.id, sync.id)
    assert first.status == "succeeded" and first.counts.added == LIST_SIZE
    return sync.id, sandbox


def _removals(sandbox: RunningSandbox) -> int:
    return sum(1 for _, path in sandbox.state.requests if "delete" in path)


def _list(world: SyncWorld, sandbox: RunningSandbox, sync_id: int) -> set[str]:
    name = world.service().get(world.project.id, sync_id).list_name
    assert name is not None
    return sandbox.state.members(name)


def _failing_source(
    connection: Connection, project_id: int, cohort_id: int, as_of_ms: int
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield from ()
    raise RuntimeError("canceling statement due to statement timeout")


def test_a_failed_evaluation_blocks_and_removes_nothing(
    world: SyncWorld, synced: tuple[int, RunningSandbox]
) -> None:
    sync_id, sandbox = synced
    broken = world.runner(source=_failing_source)  # the member source: the runner's seam
    run = world.service(broken).run_now(world.project.id, sync_id)
    assert run.status == "blocked"
    assert run.blocked_reason is not None and "statement timeout" in run.blocked_reason
    assert _removals(sandbox) == 0
    assert len(_list(world, sandbox, sync_id)) == LIST_SIZE
    # While it waits, the schedule does not run the sync again.
    assert world.service(broken).runs(world.project.id, sync_id)[0].status == "blocked"
    # The admin confirms; the cohort evaluates again (it works now) and the run proceeds.
    confirmed = world.service().confirm(world.project.id, sync_id, user_id=1, wait=True)
    assert confirmed.status == "succeeded", confirmed.error
    assert confirmed.confirmed_by == 1
    assert confirmed.counts.planned_remove == 0
    assert len(_list(world, sandbox, sync_id)) == LIST_SIZE
    with read_transaction(world.engine) as connection:
        audited = connection.execute(sa.select(audit_log.c.action, audit_log.c.target)).all()
    assert ("sync.confirm_blocked_run", f"sync:{sync_id}/run:{run.id}") in audited


def test_an_empty_cohort_blocks_until_confirmed(
    world: SyncWorld, synced: tuple[int, RunningSandbox]
) -> None:
    sync_id, sandbox = synced
    world.users(LIST_SIZE, plan="free")  # everyone leaves
    service = world.service()
    run = service.run_now(world.project.id, sync_id)
    assert run.status == "blocked"
    assert "came back empty" in (run.blocked_reason or "")
    assert _removals(sandbox) == 0
    assert len(_list(world, sandbox, sync_id)) == LIST_SIZE
    confirmed = service.confirm(world.project.id, sync_id, user_id=1, wait=True)
    assert confirmed.status == "succeeded"
    assert confirmed.counts.removed == LIST_SIZE
    assert _list(world, sandbox, sync_id) == set()


def test_a_mass_removal_over_the_share_blocks(
    world: SyncWorld, synced: tuple[int, RunningSandbox]
) -> None:
    sync_id, sandbox = synced
    world.users(6_000, plan="free")  # 60 % leave: over the 50 % default
    service = world.service()
    run = service.run_now(world.project.id, sync_id)
    assert run.status == "blocked"
    assert "6,000 of the 10,000" in (run.blocked_reason or "")
    assert _removals(sandbox) == 0
    # Run now instead of confirming replans; it is blocked again, the old run superseded.
    again = service.run_now(world.project.id, sync_id)
    assert again.status == "blocked"
    statuses = [r.status for r in service.runs(world.project.id, sync_id)]
    assert statuses[:2] == ["blocked", "superseded"]
    done = service.confirm(world.project.id, sync_id, user_id=1, wait=True)
    assert done.status == "succeeded" and done.counts.removed == 6_000
    assert len(_list(world, sandbox, sync_id)) == 4_000


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_overlapping_ticks_never_start_a_second_run(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["webhook"]
    world.users(50, plan="pro")
    cohort_id = world.cohort("Pro", PLAN_PRO)
    sync = world.service().export(world.project.id, cohort_id, world.connect(sandbox), "dynamic")
    release = threading.Event()
    entered = threading.Event()

    def slow_source(
        connection: Connection, project_id: int, cohort: int, as_of_ms: int
    ) -> Iterator[tuple[str, Mapping[str, Any]]]:
        entered.set()
        release.wait(10)
        yield from cohort_members(connection, project_id, cohort, as_of_ms)

    runner = world.runner(source=slow_source, batch_size=10)
    scheduler = SyncScheduler(world.engine, runner, world.clock, max_parallel=4)
    assert scheduler.tick() == [sync.id]
    assert entered.wait(10)
    # More ticks while the run is in progress, here and from a second worker (another process
    # would be the same: the lease is in the database).
    other = SyncScheduler(world.engine, world.runner(), world.clock)
    for _ in range(3):
        assert scheduler.tick() == []
        assert other.tick() == []
    with pytest.raises(Conflict):
        world.service(world.runner()).run_now(world.project.id, sync.id)
    release.set()
    scheduler.wait(30)
    runs = world.service().runs(world.project.id, sync.id)
    assert [r.status for r in runs] == ["succeeded"]
    # Not due again until its interval has passed.
    assert scheduler.tick() == []
    world.advance(days=1)
    assert scheduler.tick() == [sync.id]
    scheduler.wait(30)
    scheduler.close()
    other.close()
