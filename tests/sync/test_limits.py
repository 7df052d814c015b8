"""Limits of R-SYN-9: dynamic syncs per project, and the largest cohort a sync sends."""

from __future__ import annotations

import pytest

from cohortsync.domain.errors import Conflict
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.services.syncs import SyncService
from cohortsync.sync.plan import CohortTooLarge
from tests.sync.world import SyncWorld

PLAN_PRO = {"property": "plan", "op": "equals", "value": "pro"}


def test_dynamic_syncs_per_project_are_capped(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    integration_id = world.connect(sandboxes["webhook"])
    service = SyncService(
        world.engine, world.integrations, world.clock, world.runner(), max_dynamic_syncs=2
    )
    cohorts = [world.cohort(f"C{i}", PLAN_PRO) for i in range(3)]
    first = service.export(world.project.id, cohorts[0], integration_id, "dynamic")
    service.export(world.project.id, cohorts[1], integration_id, "dynamic")
    with pytest.raises(Conflict, match="already has 2 dynamic syncs"):
        service.export(world.project.id, cohorts[2], integration_id, "dynamic")
    # One-time exports do not count, and re-exporting an existing sync is not a new one.
    service.export(world.project.id, cohorts[2], integration_id, "one_time")
    service.export(world.project.id, cohorts[0], integration_id, "dynamic")
    # Stopping one makes room.
    service.stop(world.project.id, first.id)
    service.export(world.project.id, cohorts[2], integration_id, "dynamic")


def test_a_cohort_over_the_member_limit_is_refused_with_nothing_sent(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["webhook"]
    world.users(12, plan="pro")
    integration_id = world.connect(sandbox)
    cohort_id = world.cohort("Pro", PLAN_PRO)
    service = world.service(world.runner(max_members=10))
    sync = service.export(world.project.id, cohort_id, integration_id, "dynamic")
    received = sandbox.state.received
    run = service.run_now(world.project.id, sync.id)
    assert run.status == "failed"
    assert run.error is not None and "more than 10 members" in run.error
    assert sandbox.state.received == received
    assert world.integrations.get(world.project.id, integration_id).status == "connected"
    with pytest.raises(CohortTooLarge, match="more than 10 members"):
        service.preview(world.project.id, cohort_id, integration_id)
