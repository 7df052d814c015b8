"""A dynamic sync against each partner's emulator keeps the list equal to the cohort.

Users join and leave through profile changes, new events and windows expiring; after every run
the emulator's list equals the reference evaluator's cohort minus the skipped members, and the
run's skip counts say why each was left out.
"""

from __future__ import annotations

import pytest

from cohortsync.domain.syncs import SyncRun
from cohortsync.sandbox.fleet import EMULATORS, RunningSandbox
from tests.sync.world import SyncWorld

BUYERS = {
    "any": [
        {
            "event": "Purchase",
            "count": {"op": ">=", "value": 1},
            "within": {"last": 7, "unit": "day"},
        },
        {"property": "plan", "op": "equals", "value": "pro"},
    ]
}


def _people(world: SyncWorld) -> None:
    world.set_profile("ana", plan="pro", **{"$email": "ana@x.io"})
    world.set_profile("ben", plan="free", **{"$email": "ben@x.io"})
    world.set_profile("cy", plan="free")  # no email: Iterable skips them
    world.set_profile("dee", plan="free", **{"$email": "dee@x.io", "$iterable_user_id": "it-dee"})
    world.set_profile("eli", plan="free", **{"$email": "eli@x.io", "$CleverTap_user_id": "ct-eli"})
    world.event("ben", "Purchase", days_ago=6)
    world.event("cy", "Purchase", days_ago=1)
    world.event("dee", "Purchase", days_ago=2)
    world.event("eli", "Purchase", days_ago=3)
    world.event("fox", "Purchase", days_ago=1)  # events but no profile: anonymous
    world.anonymous_event("tablet-1", "Purchase")


def _assert_exact(
    world: SyncWorld, sandbox: RunningSandbox, sync_id: int, cohort_id: int, run: SyncRun
) -> None:
    expected, skipped = world.expected(sandbox.partner, cohort_id)
    assert run.status == "succeeded", run.error
    name = world.service().get(world.project.id, sync_id).list_name
    assert name is not None
    assert sandbox.state.members(name) == expected
    assert world.acknowledged(sync_id) == expected
    assert dict(run.counts.skipped) == skipped


@pytest.mark.parametrize("partner", sorted(EMULATORS))
def test_dynamic_sync_follows_the_cohort(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox], partner: str
) -> None:
    sandbox = sandboxes[partner]
    _people(world)
    cohort_id = world.cohort("Buyers", BUYERS)
    integration_id = world.connect(sandbox)
    service = world.service()
    sync = service.export(world.project.id, cohort_id, integration_id, "dynamic")
    assert sync.interval_seconds == int(
        {"iterable": 900, "clevertap": 900, "xtremepush": 7200, "webhook": 1800}[partner]
    )

    first = service.run_now(world.project.id, sync.id)
    _assert_exact(world, sandbox, sync.id, cohort_id, first)
    assert first.counts.members >= 5 and first.counts.added == first.counts.planned_add

    # Leave: ana's plan changes; join: gus buys; ben's purchase falls out of the 7-day window.
    world.set_profile("ana", plan="free")
    world.set_profile("gus", plan="free", **{"$email": "gus@x.io"})
    world.event("gus", "Purchase", days_ago=0)
    world.advance(days=1.5)
    second = service.run_now(world.project.id, sync.id)
    _assert_exact(world, sandbox, sync.id, cohort_id, second)
    assert second.counts.removed >= 2  # ana and ben
    assert second.counts.added >= 1  # gus

    # A member's partner identity changes: removed under the old key, added under the new.
    world.set_profile("gus", **{"$iterable_user_id": "it-gus", "$CleverTap_user_id": "ct-gus"})
    # Iterable: losing the email makes a member unmatchable, so they leave the list.
    world.unset("dee", "$email")
    third = service.run_now(world.project.id, sync.id)
    _assert_exact(world, sandbox, sync.id, cohort_id, third)

    # Nothing changed: nothing is sent (CleverTap gets its snapshot, three calls, every run, so
    # that a segment edited on CleverTap's side is set right again).
    requests_before = len(sandbox.state.requests)
    quiet = service.run_now(world.project.id, sync.id)
    _assert_exact(world, sandbox, sync.id, cohort_id, quiet)
    assert quiet.counts.planned_add == quiet.counts.planned_remove == 0
    assert quiet.counts.added == quiet.counts.removed == 0
    list_calls = {"iterable": 1, "clevertap": 3, "xtremepush": 1, "webhook": 0}[partner]
    assert len(sandbox.state.requests) - requests_before <= list_calls
