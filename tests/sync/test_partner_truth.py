"""The partner's list as it really is (R-SYN-11, R-X-2): a list deleted on the partner comes back
whole, a list edited by hand is repaired where the partner can be read, two cohorts of one name
never share a list, a renamed cohort keeps its list, and each run lists whom it skipped or had
refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from cohortsync.domain.syncs import SyncRun
from cohortsync.partners.iterable.emulator import IterableSandbox
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.services.cohorts import CohortService
from cohortsync.storage.database import read_transaction, write_transaction
from cohortsync.storage.tables import sync_members, sync_run_members, syncs
from tests.sync.world import SyncWorld

PRO = {"property": "plan", "op": "equals", "value": "pro"}
PRO_COHORT = {"all": [PRO]}


def _pros(world: SyncWorld, *names: str) -> None:
    for name in names:
        world.set_profile(name, plan="pro", **{"$email": f"{name}@x.io"})


def _export(world: SyncWorld, sandbox: RunningSandbox, cohort_name: str = "Pros") -> int:
    cohort_id = world.cohort(cohort_name, PRO_COHORT)
    integration_id = world.connect(sandbox)
    return world.service().export(world.project.id, cohort_id, integration_id, "dynamic").id


def _list_id(world: SyncWorld, sync_id: int) -> str:
    list_id = world.service().get(world.project.id, sync_id).list_id
    assert list_id is not None
    return list_id


def _held(sandbox: RunningSandbox, list_id: str) -> set[str]:
    with sandbox.state.lock:
        return set(sandbox.state.lists[list_id].members)


def _run(world: SyncWorld, sync_id: int, *, reconcile: bool = False) -> SyncRun:
    run = world.service().run_now(world.project.id, sync_id, reconcile=reconcile)
    assert run.status == "succeeded", run.error
    return run


@pytest.mark.parametrize("partner", ["iterable", "xtremepush", "clevertap"])
def test_a_list_deleted_on_the_partner_comes_back_whole_in_the_next_run(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox], partner: str
) -> None:
    sandbox = sandboxes[partner]
    _pros(world, "ann", "bob", "cat")
    sync_id = _export(world, sandbox)
    _run(world, sync_id)
    expected, _ = world.expected(partner, world.service().get(world.project.id, sync_id).cohort_id)
    assert sandbox.state.delete_list(_list_id(world, sync_id))

    _pros(world, "dov")  # one new joiner: the old engine sent only them to an empty list
    run = _run(world, sync_id)

    list_id = _list_id(world, sync_id)
    assert _held(sandbox, list_id) == expected | {"dov@x.io" if partner == "iterable" else "dov"}
    assert world.acknowledged(sync_id) == _held(sandbox, list_id)
    if partner != "clevertap":  # CleverTap's snapshot makes the segment again by itself
        assert run.counts.list_recreated
        assert run.counts.added == 4


def _two_teams(world: SyncWorld, sandbox: RunningSandbox, **settings: str) -> tuple[int, int]:
    """Two cohorts both named "Team" (ann is pro, bob is free), each exported dynamically to
    one integration; the two syncs."""
    world.set_profile("ann", plan="pro")
    world.set_profile("bob", plan="free")
    integration_id = world.connect(sandbox, **settings)
    pro = world.cohort("Team", PRO_COHORT)
    free = world.cohort("Team", {"all": [{"property": "plan", "op": "equals", "value": "free"}]})
    service = world.service()
    first = service.export(world.project.id, pro, integration_id, "dynamic").id
    return first, service.export(world.project.id, free, integration_id, "dynamic").id


def test_two_cohorts_of_one_name_get_two_lists(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["xtremepush"]
    first, second = _two_teams(world, sandbox)
    _run(world, first)
    _run(world, second)

    assert _list_id(world, first) != _list_id(world, second)
    assert _held(sandbox, _list_id(world, first)) == {"ann"}
    assert _held(sandbox, _list_id(world, second)) == {"bob"}


def test_two_syncs_that_were_given_one_list_before_are_parted(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    """Xtremepush lists used to be found by title: two cohorts named alike got one list."""
    sandbox = sandboxes["xtremepush"]
    first, second = _two_teams(world, sandbox)
    _run(world, first)
    _run(world, second)
    shared = _list_id(world, first)
    with write_transaction(world.engine) as connection:  # what the old engine left: one list
        connection.execute(syncs.update().where(syncs.c.id == second).values(list_id=shared))
    sandbox.state.edit_by_hand(shared, add=["bob"])

    parted = _run(world, second)

    assert parted.counts.list_recreated and _list_id(world, second) != shared
    assert _held(sandbox, _list_id(world, second)) == {"bob"}
    _run(world, first)
    assert _list_id(world, first) == shared
    assert _held(sandbox, shared) == {"ann"}  # bob, put there by the old sharing, is taken off


def test_two_cohorts_of_one_name_may_not_share_a_clevertap_segment(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["clevertap"]
    first, second = _two_teams(world, sandbox, list_name_template="{cohort_name}")
    service = world.service()
    _run(world, first)

    refused = service.run_now(world.project.id, second)

    assert refused.status == "failed"
    assert "already sends a list named 'Team'" in (refused.error or "")
    assert sandbox.state.members("Team") == {"ann"}  # the first cohort's segment is untouched


def test_a_renamed_cohort_and_a_list_renamed_on_the_partner_keep_their_list(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["iterable"]
    _pros(world, "ann")
    sync_id = _export(world, sandbox)
    _run(world, sync_id)
    list_id = _list_id(world, sync_id)
    cohort_id = world.service().get(world.project.id, sync_id).cohort_id
    CohortService(world.engine, world.clock).update(
        world.project.id, cohort_id, name="Renamed pros"
    )
    sandbox.state.edit_by_hand(list_id, rename="VIP (edited in Iterable)")

    _pros(world, "bob")
    _run(world, sync_id)

    assert _list_id(world, sync_id) == list_id
    assert len(sandbox.state.lists) == 1
    assert _held(sandbox, list_id) == {"ann@x.io", "bob@x.io"}


def test_reconcile_repairs_a_list_edited_by_hand_and_counts_the_drift(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["iterable"]
    _pros(world, "ann", "bob", "cat")
    sync_id = _export(world, sandbox)
    first = _run(world, sync_id)
    assert not first.counts.reconciled  # a list the sync made itself is known to be empty
    list_id = _list_id(world, sync_id)
    sandbox.state.edit_by_hand(list_id, remove=["bob@x.io"], add=["stranger@x.io"])

    reads = sandbox.state.requests.count(("GET", "/api/lists/getUsers"))
    scheduled = _run(world, sync_id)  # an ordinary run does not spend the read budget
    assert not scheduled.counts.reconciled
    assert sandbox.state.requests.count(("GET", "/api/lists/getUsers")) == reads
    assert _held(sandbox, list_id) == {"ann@x.io", "cat@x.io", "stranger@x.io"}

    repaired = _run(world, sync_id, reconcile=True)

    assert repaired.counts.reconciled
    assert (repaired.counts.drift_missing, repaired.counts.drift_extra) == (1, 1)
    assert repaired.as_json()["counts"]["drift"] == {"missing": 1, "extra": 1}
    assert _held(sandbox, list_id) == {"ann@x.io", "bob@x.io", "cat@x.io"}
    assert world.acknowledged(sync_id) == _held(sandbox, list_id)


def test_a_list_found_by_name_is_read_back_before_its_first_run_relies_on_it(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["iterable"]
    _pros(world, "ann")
    cohort_id = world.cohort("Pros", PRO_COHORT)
    left_over = sandbox.state.create_list(f"mixpanel_Pros_{cohort_id}")  # an earlier export's
    sandbox.state.edit_by_hand(left_over.id, add=["gone@x.io", "ann@x.io"])
    integration_id = world.connect(sandbox)
    sync_id = world.service().export(world.project.id, cohort_id, integration_id, "dynamic").id

    first = _run(world, sync_id)

    assert _list_id(world, sync_id) == left_over.id
    assert first.counts.reconciled and first.counts.drift_extra == 1
    assert _held(sandbox, left_over.id) == {"ann@x.io"}


def _fail_after_first_batch(world: SyncWorld, sandbox: RunningSandbox, sync_id: int) -> SyncRun:
    """A run whose partner stops answering after the first batch (one member a batch)."""

    def outage(_run: SyncRun) -> None:
        sandbox.state.faults.server_error_next = 50  # longer than the retry budget

    service = world.service(world.runner(on_batch=outage, batch_size=1))
    failed = service.run_now(world.project.id, sync_id)
    sandbox.state.faults.server_error_next = 0
    assert failed.status == "failed"
    return failed


def test_an_email_in_capitals_is_sent_as_spelt_and_never_taken_for_drift(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["iterable"]
    world.set_profile("kim", plan="pro", **{"$email": "Kim@Example.COM"})
    sync_id = _export(world, sandbox)
    _run(world, sync_id)
    assert _held(sandbox, _list_id(world, sync_id)) == {"Kim@Example.COM"}

    checked = _run(world, sync_id, reconcile=True)

    assert (checked.counts.drift_missing, checked.counts.drift_extra) == (0, 0)
    assert checked.counts.planned_add == checked.counts.planned_remove == 0


def test_a_readable_list_is_read_back_daily_and_after_a_run_that_failed_sending(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["iterable"]
    _pros(world, "ann")
    sync_id = _export(world, sandbox)
    _run(world, sync_id)
    assert not _run(world, sync_id).counts.reconciled
    world.clock.advance(timedelta(hours=24))
    assert _run(world, sync_id).counts.reconciled

    sandbox.state.faults.server_error_next = 50  # a run that fails before sending anything
    assert world.service().run_now(world.project.id, sync_id).status == "failed"
    sandbox.state.faults.server_error_next = 0
    assert not _run(world, sync_id).counts.reconciled  # nothing could have drifted

    _pros(world, "bob", "cat")
    _fail_after_first_batch(world, sandbox, sync_id)
    after = _run(world, sync_id)
    assert after.counts.reconciled  # drift is suspected after a failure mid-send
    assert _held(sandbox, _list_id(world, sync_id)) == {"ann@x.io", "bob@x.io", "cat@x.io"}


def test_a_read_back_the_partner_does_not_answer_lets_the_run_go_on_and_is_tried_again(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["iterable"]
    _pros(world, "ann")
    sync_id = _export(world, sandbox)
    _run(world, sync_id)
    assert isinstance(sandbox.state, IterableSandbox)
    sandbox.state.reads_per_minute = 0  # every getUsers answered 429 RateLimitExceeded
    _pros(world, "bob")

    run = _run(world, sync_id, reconcile=True)

    assert not run.counts.reconciled and run.counts.read_back_error
    assert _held(sandbox, _list_id(world, sync_id)) == {"ann@x.io", "bob@x.io"}
    assert world.service().get(world.project.id, sync_id).reconciled_at is not None
    sandbox.state.reads_per_minute = None
    world.clock.advance(timedelta(hours=24))
    assert _run(world, sync_id).counts.reconciled


def test_a_sync_from_before_email_keys_is_repaired_once_an_admin_confirms(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    """Before, Iterable members were sent as userId = distinct_id with preferUserId, which made
    placeholder users; their acknowledged keys were distinct_ids, and the sync never read back."""
    sandbox = sandboxes["iterable"]
    people = [f"p{i:02d}" for i in range(12)]
    _pros(world, *people)
    sync_id = _export(world, sandbox)
    _run(world, sync_id)
    list_id = _list_id(world, sync_id)
    with write_transaction(world.engine) as connection:  # the state the old engine left
        connection.execute(
            sync_members.update()
            .where(sync_members.c.sync_id == sync_id)
            .values(member_key=sync_members.c.distinct_id)
        )
        connection.execute(syncs.update().where(syncs.c.id == sync_id).values(reconciled_at=None))
    sandbox.state.edit_by_hand(
        list_id,
        remove=[f"{p}@x.io" for p in people],
        add=[f"{p}@placeholder.email" for p in people],
    )

    blocked = world.service().run_now(world.project.id, sync_id)
    assert blocked.status == "blocked"
    assert "did not put there" in (blocked.blocked_reason or "")
    assert _held(sandbox, list_id) == {f"{p}@placeholder.email" for p in people}
    assert world.service().run_now(world.project.id, sync_id).status == "blocked"  # read again

    confirmed = world.service().confirm(world.project.id, sync_id, user_id=1, wait=True)

    assert confirmed.status == "succeeded", confirmed.error
    assert _held(sandbox, list_id) == {f"{p}@x.io" for p in people}
    assert world.acknowledged(sync_id) == _held(sandbox, list_id)


def test_the_webhook_gets_a_full_members_refresh_after_a_failed_run(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["webhook"]
    _pros(world, "ann", "bob")
    sync_id = _export(world, sandbox)
    assert not _run(world, sync_id).counts.refreshed
    list_id = _list_id(world, sync_id)
    sandbox.state.edit_by_hand(list_id, remove=["ann"], add=["stranger"])
    sandbox.state.faults.server_error_next = 50
    _pros(world, "cat")
    assert world.service().run_now(world.project.id, sync_id).status == "failed"
    sandbox.state.faults.server_error_next = 0

    after = _run(world, sync_id)

    assert after.counts.refreshed
    assert _held(sandbox, list_id) == {"ann", "bob", "cat"}


def test_each_run_lists_the_members_it_skipped_and_the_partner_refused(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["iterable"]
    _pros(world, "ann", "bob")
    world.set_profile("kim", plan="pro")  # no email: Iterable cannot take her
    world.set_profile("zed", plan="pro", **{"$email": "ann@x.io"})  # ann's email: a duplicate
    sandbox.state.faults.reject_keys = {"bob@x.io"}
    sync_id = _export(world, sandbox)
    run = world.service().run_now(world.project.id, sync_id)
    assert run.status == "partial"

    with read_transaction(world.engine) as connection:
        rows = connection.execute(
            sa.select(
                sync_run_members.c.outcome,
                sync_run_members.c.distinct_id,
                sync_run_members.c.member_key,
                sync_run_members.c.reason,
            ).where(sync_run_members.c.run_id == run.id)
        ).all()
    by_outcome = {(r.outcome, r.distinct_id, r.member_key) for r in rows}
    assert by_outcome == {
        ("skipped", "kim", None),
        ("skipped", "zed", "ann@x.io"),
        ("rejected", "bob", "bob@x.io"),
    }
    reasons = {r.distinct_id: r.reason for r in rows if r.outcome == "skipped"}
    assert reasons == {"kim": "missing email", "zed": "duplicate partner id"}
