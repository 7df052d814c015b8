"""Explain (R-X-4, R-SYN-12): why one user is or is not on a sync's partner list, checked against
real runs on the partner emulators and against the cohort's own member query."""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest
import sqlalchemy as sa

from cohortsync.clock import now_ms
from cohortsync.domain.errors import NotFound
from cohortsync.domain.syncs import SyncRun
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.services.explain import Explainer, UnknownUser
from cohortsync.services.run_members import RunMemberReport
from cohortsync.storage.cohort_store import CohortStore
from cohortsync.storage.database import read_transaction
from tests.sync.world import SyncWorld

PRO = {"property": "plan", "op": "equals", "value": "pro"}
REPEAT_BUYERS = {
    "all": [
        PRO,
        {
            "event": "Purchase",
            "count": {"op": ">=", "value": 2},
            "within": {"last": 30, "unit": "day"},
        },
    ]
}
_insert_ids = count()


def explain(world: SyncWorld, sync_id: int, user: str) -> dict[str, Any]:
    """The explanation as the API gives it."""
    explainer = Explainer(world.engine, world.integrations, world.clock)
    return explainer.explain(world.project.id, sync_id, user).as_json()


def export(world: SyncWorld, sandbox: RunningSandbox, definition: Any) -> int:
    cohort_id = world.cohort("Explained", definition)
    integration_id = world.connect(sandbox)
    return world.service().export(world.project.id, cohort_id, integration_id, "dynamic").id


def run(world: SyncWorld, sync_id: int, status: str = "succeeded", **options: Any) -> SyncRun:
    done = world.service().run_now(world.project.id, sync_id, **options)
    assert done.status == status, done.error
    return done


def on_list(world: SyncWorld, sandbox: RunningSandbox, sync_id: int) -> set[str]:
    name = world.service().get(world.project.id, sync_id).list_name
    assert name is not None
    return sandbox.state.members(name)


def log_in_from(world: SyncWorld, device: str, user: str) -> None:
    """An event carrying both a device id and a user id: the device becomes the user's."""
    record = {
        "event": "Login",
        "properties": {
            "$device_id": device,
            "$user_id": user,
            "time": now_ms(world.clock),
            "$insert_id": f"x{next(_insert_ids)}",
        },
    }
    result = world.ingestion.import_events(world.project, [record])
    assert not result.failed, result.failed


def test_in_the_cohort_and_on_the_list_by_any_of_their_ids(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["iterable"]
    world.set_profile("kim", plan="pro", **{"$email": "kim@example.com"})
    log_in_from(world, "phone-1", "kim")
    sync_id = export(world, sandbox, PRO)
    run(world, sync_id)
    (key,) = on_list(world, sandbox, sync_id)

    calls = len(sandbox.state.requests)
    answer = explain(world, sync_id, "phone-1")  # the device id works as well as kim
    assert len(sandbox.state.requests) == calls  # the partner is not asked

    assert answer["distinct_id"] == "kim" and "phone-1" in answer["ids"]
    assert answer["in_cohort"] is True and answer["match"] == "all"
    (condition,) = answer["conditions"]
    assert condition == {
        "number": "1",
        "kind": "property",
        "label": 'plan equals "pro"',
        "met": True,
        "finding": 'plan is "pro"',
        "property": "plan",
        "op": "equals",
        "value": "pro",
        "actual": "pro",
        "is_set": True,
    }
    assert answer["identified"] is True
    assert (answer["partner_key"], answer["skip_reason"]) == (key, None)
    assert (answer["acknowledged"], answer["acknowledged_key"]) == (True, key)
    assert answer["last_rejection"] is None
    assert (
        answer["summary"] == f"On the list: in the cohort, identified, sent as {key}, acknowledged."
    )
    assert explain(world, sync_id, "kim") == answer


def test_in_the_cohort_but_skipped_anonymous_or_without_an_email(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["iterable"]
    world.set_profile("kim", **{"$email": "kim@example.com"})
    world.set_profile("nomail", plan="pro")
    for user in ("kim", "nomail", "fox"):  # fox has no profile at all
        world.event(user, "Purchase")
    sync_id = export(world, sandbox, {"event": "Purchase"})
    done = run(world, sync_id)
    assert done.counts.skipped == {"anonymous": 1, "missing email": 1}
    assert on_list(world, sandbox, sync_id) == {explain(world, sync_id, "kim")["partner_key"]}

    fox = explain(world, sync_id, "fox")
    assert (fox["in_cohort"], fox["identified"]) == (True, False)
    assert (fox["partner_key"], fox["skip_reason"], fox["acknowledged"]) == (
        None,
        "anonymous",
        False,
    )
    assert fox["conditions"][0]["count"] == 1 and fox["conditions"][0]["met"] is True
    assert fox["summary"] == "Not on the list: in the cohort, but skipped (anonymous)."

    nomail = explain(world, sync_id, "nomail")
    assert (nomail["in_cohort"], nomail["identified"]) == (True, True)
    assert (nomail["partner_key"], nomail["skip_reason"]) == (None, "missing email")
    assert nomail["summary"] == "Not on the list: in the cohort, but skipped (missing email)."

    # The run's report lists the same two, with the same reasons.
    report = RunMemberReport(world.engine)
    page = report.page(world.project.id, sync_id, done.id, outcome="skipped")
    assert [(m.distinct_id, m.reason) for m in page.members] == [
        ("fox", "anonymous"),
        ("nomail", "missing email"),
    ]


def test_left_the_cohort_and_removed(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["xtremepush"]
    world.set_profile("ann", plan="pro")
    world.set_profile("bob", plan="pro")
    sync_id = export(world, sandbox, PRO)
    run(world, sync_id)
    assert on_list(world, sandbox, sync_id) == {"ann", "bob"}
    world.set_profile("ann", plan="free")

    leaving = explain(world, sync_id, "ann")  # out of the cohort, still on the list
    assert (leaving["in_cohort"], leaving["acknowledged"]) == (False, True)
    assert leaving["summary"] == (
        'On the list as ann until the next run takes them off: condition 1 (plan equals "pro") '
        'is not met: plan is "free".'
    )

    run(world, sync_id)
    assert on_list(world, sandbox, sync_id) == {"bob"}
    gone = explain(world, sync_id, "ann")
    assert (gone["in_cohort"], gone["acknowledged"], gone["acknowledged_key"]) == (
        False,
        False,
        None,
    )
    assert gone["partner_key"] == "ann"  # still matchable: only the condition keeps them off
    assert gone["conditions"][0]["met"] is False
    assert gone["conditions"][0]["actual"] == "free"
    assert (
        gone["summary"]
        == 'Not on the list: condition 1 (plan equals "pro") is not met: plan is "free".'
    )


def test_rejected_by_the_partner_then_let_through(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["xtremepush"]
    world.set_profile("ann", plan="pro")
    world.set_profile("bob", plan="pro")
    sync_id = export(world, sandbox, PRO)
    sandbox.state.faults.reject_keys = {"bob"}
    partial = run(world, sync_id, "partial")
    assert on_list(world, sandbox, sync_id) == {"ann"}

    bob = explain(world, sync_id, "bob")
    rejection = bob["last_rejection"]
    assert rejection is not None
    assert (rejection["key"], rejection["op"], rejection["run_id"]) == ("bob", "add", partial.id)
    assert rejection["reason"]  # the partner's words
    assert (bob["in_cohort"], bob["partner_key"], bob["acknowledged"]) == (True, "bob", False)
    assert bob["summary"] == (
        f"Not on the list: in the cohort, identified, sent as bob, but the partner refused it in "
        f"run {partial.id}: {rejection['reason']}. The next run tries again."
    )
    report = RunMemberReport(world.engine)
    rejected = report.page(world.project.id, sync_id, partial.id, outcome="rejected")
    assert [(m.distinct_id, m.partner_key) for m in rejected.members] == [("bob", "bob")]

    sandbox.state.faults.reject_keys = set()
    run(world, sync_id)
    again = explain(world, sync_id, "bob")
    assert (again["acknowledged"], again["last_rejection"]) == (True, None)
    assert again["summary"].startswith("On the list:")


def test_not_in_the_cohort_because_of_condition_two(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["webhook"]
    world.set_profile("kim", plan="pro", **{"$email": "kim@example.com"})
    world.event("kim", "Purchase", days_ago=2)
    world.event("kim", "Purchase", days_ago=40)  # outside the window
    world.event("kim", "Purchase", days_ago=-1 / 48)  # half an hour after the evaluation time
    world.event("kim", "Refund", days_ago=1)  # another event
    sync_id = export(world, sandbox, REPEAT_BUYERS)
    run(world, sync_id)

    answer = explain(world, sync_id, "kim")
    assert answer["in_cohort"] is False
    assert [c["met"] for c in answer["conditions"]] == [True, False]
    purchase = answer["conditions"][1]
    assert purchase["label"] == "Purchase ≥ 2 in the last 30 days"
    assert (purchase["count"], purchase["required"], purchase["within"]) == (
        1,
        {"op": ">=", "value": 2},
        {"last": 30, "unit": "day"},
    )
    assert answer["summary"] == (
        "Not on the list: condition 2 (Purchase ≥ 2 in the last 30 days) is not met: 1 event."
    )
    assert answer["partner_key"] == "kim" and answer["acknowledged"] is False

    world.event("kim", "Purchase", days_ago=29)
    run(world, sync_id)
    now_in = explain(world, sync_id, "kim")
    assert now_in["in_cohort"] is True and now_in["conditions"][1]["count"] == 2
    assert now_in["summary"].startswith("On the list:")
    assert on_list(world, sandbox, sync_id) == {"kim"}


def test_nested_groups_references_and_negations_agree_with_the_cohort(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    """Each user's conditions combine to exactly the answer of the cohort's own query."""
    vip = world.cohort("VIP", {"property": "tier", "op": "in", "value": ["gold", "platinum"]})
    definition = {
        "all": [
            {"any": [{"in_cohort": vip}, {"property": "$email", "op": "is_set"}]},
            {"not": {"event": "App Open", "within": {"last": 7, "unit": "day"}}},
            {"property": "age", "op": "between", "value": [18, 30]},
            {"property": "country", "op": "not_equals", "value": "FR"},
        ]
    }
    world.set_profile("ann", age=25, tier="gold")  # in: VIP, never opened, 25
    world.set_profile("bob", age=25, **{"$email": "bob@x.io"})  # opened the app: out
    world.event("bob", "App Open", days_ago=1)
    world.event("bob", "App Open", days_ago=3)
    world.set_profile("cy", age=40, **{"$email": "cy@x.io"})  # too old
    world.set_profile("dee", age=20, country="FR", **{"$email": "dee@x.io"})  # country
    world.set_profile("eve", age=20)  # neither VIP nor an email
    world.event("fox", "App Open", days_ago=30)  # no profile: age is not set
    world.event("gil", "App Open", days_ago=8)  # opened before the window, no profile
    sync_id = export(world, sandboxes["webhook"], definition)

    with read_transaction(world.engine) as connection:
        query = (
            CohortStore(connection)
            .members_query(
                world.project.id,
                world.service().get(world.project.id, sync_id).cohort_id,
                now_ms(world.clock),
                with_properties=False,
            )
            .subquery()
        )
        members = {row[0] for row in connection.execute(sa.select(query.c.distinct_id))}
    assert members == {"ann"}
    for user in ("ann", "bob", "cy", "dee", "eve", "fox", "gil"):
        answer = explain(world, sync_id, user)
        assert answer["in_cohort"] is (user in members), user
        assert all(c["met"] for c in answer["conditions"]) is answer["in_cohort"], user

    bob = explain(world, sync_id, "bob")
    either, no_open, age, country = bob["conditions"]
    assert [i["number"] for i in either["items"]] == ["1.1", "1.2"]
    assert [i["met"] for i in either["items"]] == [False, True] and either["met"] is True
    assert either["items"][0]["cohort_name"] == "VIP"
    assert (no_open["kind"], no_open["met"], no_open["items"][0]["count"]) == ("not", False, 2)
    assert no_open["items"][0]["number"] == "2.1"
    assert (age["met"], country["met"], country["is_set"]) == (True, True, False)
    assert bob["summary"] == (
        "Not on the list: condition 2 (not (App Open ≥ 1 in the last 7 days)) is not met: 2 events."
    )
    eve = explain(world, sync_id, "eve")
    assert eve["summary"] == (
        "Not on the list: condition 1 (any of 2 conditions) is not met: 0 of 2 met."
    )
    fox = explain(world, sync_id, "fox")
    assert (fox["conditions"][2]["met"], fox["conditions"][2]["is_set"]) == (False, False)
    assert fox["conditions"][3]["met"] is True  # not_equals holds for a missing property


def test_what_the_partner_held_when_its_list_was_last_read_back(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    iterable = sandboxes["iterable"]
    world.set_profile("kim", plan="pro", **{"$email": "kim@example.com"})
    sync_id = export(world, iterable, PRO)
    never = explain(world, sync_id, "kim")
    assert never["on_partner_list"] is None and never["read_back"] is None

    run(world, sync_id)
    world.advance(0.01)
    done = run(world, sync_id, reconcile=True)
    assert done.counts.reconciled
    answer = explain(world, sync_id, "kim")
    read_back_at = world.service().get(world.project.id, sync_id).read_back_at
    assert read_back_at is not None
    assert answer["on_partner_list"] == {"held": True, "as_of": read_back_at.isoformat()}

    # Taken off by hand on the partner: the next read-back sees it (and the run repairs it).
    (key,) = on_list(world, iterable, sync_id)
    list_id = world.service().get(world.project.id, sync_id).list_id
    assert list_id is not None
    iterable.state.edit_by_hand(list_id, remove=[key])
    world.advance(1 / 1440)
    run(world, sync_id, reconcile=True)
    repaired = explain(world, sync_id, "kim")
    assert repaired["on_partner_list"]["held"] is False  # read before the repair was sent
    assert repaired["acknowledged"] is True and on_list(world, iterable, sync_id) == {key}

    xtremepush_sync = export(world, sandboxes["xtremepush"], PRO)
    run(world, xtremepush_sync)
    xtremepush = explain(world, xtremepush_sync, "kim")
    assert xtremepush["on_partner_list"] is None  # a partner whose lists cannot be read


def test_unknown_users_and_syncs_are_not_found(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    world.set_profile("kim", plan="pro")
    sync_id = export(world, sandboxes["webhook"], PRO)
    with pytest.raises(UnknownUser, match="'nobody'"):
        explain(world, sync_id, "nobody")
    with pytest.raises(NotFound, match="sync 999"):
        explain(world, 999, "kim")
    explainer = Explainer(world.engine, world.integrations, world.clock)
    with pytest.raises(NotFound, match=f"sync {sync_id} does not exist in project 4242"):
        explainer.explain(4242, sync_id, "kim")
