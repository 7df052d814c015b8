"""Xtremepush user lists against the emulator on loopback: lists are known by id, titles may
repeat, a list deleted by hand is gone, and unknown list ids and user ids are refused."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest

from cohortsync.destinations.base import CohortInfo, Destination, PartnerMember
from cohortsync.destinations.errors import PartnerConfigError
from cohortsync.partners.xtremepush.emulator import XtremepushSandbox
from cohortsync.sandbox.fleet import RunningSandbox
from tests.destinations.conftest import Harness, fresh

BUYERS = CohortInfo(5, "Buyers")
OTHER_BUYERS = CohortInfo(6, "Buyers")  # another cohort with the same name


@pytest.fixture
def xtremepush(sandboxes: dict[str, RunningSandbox]) -> Harness:
    return fresh(sandboxes, "xtremepush")


def state(harness: Harness) -> XtremepushSandbox:
    assert isinstance(harness.sandbox.state, XtremepushSandbox)
    return harness.sandbox.state


def users(destination: Destination, *ids: str) -> list[PartnerMember]:
    made = [destination.member(i, {"$email": f"{i}@example.com"}) for i in ids]
    assert all(isinstance(m, PartnerMember) for m in made)
    return [m for m in made if isinstance(m, PartnerMember)]


def call(harness: Harness, method_model: str, **body: Any) -> httpx.Response:
    """One External API call, as Xtremepush's own clients make it."""
    token = harness.sandbox.state.credentials["app_token"]
    url = f"{harness.sandbox.server.url}/api/external/{method_model}"
    return httpx.post(url, json={"apptoken": token, **body})


def test_two_cohorts_with_one_name_get_two_lists(xtremepush: Harness) -> None:
    destination = xtremepush.destination()
    first = destination.ensure_list("Buyers", BUYERS)
    second = destination.ensure_list("Buyers", OTHER_BUYERS, taken=frozenset({first.id}))
    assert first.id != second.id
    destination.add_members(first, users(destination, "ada"))
    destination.add_members(second, users(destination, "lin"))
    held = {x.id: (x.name, set(x.members)) for x in state(xtremepush).lists.values()}
    assert held == {first.id: ("Buyers", {"ada"}), second.id: ("Buyers", {"lin"})}
    # each sync finds its own again, skipping the one the other owns
    again = destination.ensure_list("Buyers", BUYERS, taken=frozenset({second.id}))
    assert again.id == first.id
    assert destination.ensure_list("Buyers", OTHER_BUYERS, frozenset({first.id})).id == second.id
    assert len(state(xtremepush).lists) == 2


def test_find_list_by_id_follows_hand_edits_and_is_none_once_deleted(xtremepush: Harness) -> None:
    destination = xtremepush.destination()
    target = destination.ensure_list("Buyers", BUYERS)
    assert destination.find_list(target.id, BUYERS) == replace(target, created=False)
    state(xtremepush).edit_by_hand(target.id, rename="Buyers (old)")
    renamed = destination.find_list(target.id, BUYERS)
    assert renamed is not None and (renamed.id, renamed.name) == (target.id, "Buyers (old)")
    control = f"{xtremepush.sandbox.server.url}/_sandbox/lists/{target.id}"
    assert httpx.post(control, json={"delete": True}).status_code == 200
    assert destination.find_list(target.id, BUYERS) is None
    # a list of the same title made since is another list, not this one
    newer = destination.ensure_list("Buyers", BUYERS)
    assert newer.id != target.id
    assert destination.find_list(target.id, BUYERS) is None


def test_items_of_a_deleted_list_are_a_404_in_the_error_envelope(xtremepush: Harness) -> None:
    destination = xtremepush.destination()
    target = destination.ensure_list("Buyers", BUYERS)
    destination.add_members(target, users(destination, "ada", "mo"))
    assert state(xtremepush).delete_list(target.id)
    for method_model in ("import/list", "delete/list-item"):
        reply = call(xtremepush, method_model, id=target.id, items=["ada"])
        assert reply.status_code == 404
        body = reply.json()
        assert (body["code"], body["success"]) == (404, False)
        assert target.id in body["message"] and body["errors"]
    with pytest.raises(PartnerConfigError, match="not found") as refused:
        destination.add_members(target, users(destination, "ada"))
    assert refused.value.status == 404
    assert state(xtremepush).lists == {}  # nothing was made on the way


def test_hand_edits_are_undone_by_the_list_calls(xtremepush: Harness) -> None:
    destination = xtremepush.destination()
    target = destination.ensure_list("Buyers", BUYERS)
    destination.add_members(target, users(destination, "ada", "mo"))
    state(xtremepush).edit_by_hand(target.id, add=["intruder"], remove=["ada"])
    assert state(xtremepush).lists[target.id].members.keys() == {"mo", "intruder"}
    destination.remove_members(target, users(destination, "intruder"))
    destination.add_members(target, users(destination, "ada"))
    assert state(xtremepush).lists[target.id].members.keys() == {"ada", "mo"}


def test_unknown_user_ids_are_refused_and_never_created(
    xtremepush: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state(xtremepush), "known_users", {"ada", "mo"})
    destination = xtremepush.destination()
    target = destination.ensure_list("Buyers", BUYERS)
    outcome = destination.add_members(target, users(destination, "ada", "stranger", "mo"))
    assert outcome.accepted == ["ada", "mo"]
    assert [(r.key, r.reason) for r in outcome.rejected] == [("stranger", "user not found")]
    assert state(xtremepush).lists[target.id].members.keys() == {"ada", "mo"}
    assert state(xtremepush).known_users == {"ada", "mo"}


def test_list_list_conditions_on_id_and_title(xtremepush: Harness) -> None:
    made = [state(xtremepush).create_list(title) for title in ("Buyers", "Buyers", "Churned")]
    ids = [int(x.id) for x in made]

    def listed(*condition: list[Any]) -> list[int]:
        reply = call(xtremepush, "list/list", condition=list(condition))
        assert reply.status_code == 200, reply.text
        return sorted(entry["id"] for entry in reply.json()["data"])

    assert listed(["title", "=", "Buyers"]) == ids[:2]
    assert listed(["id", "=", str(ids[1])]) == [ids[1]]
    assert listed(["id", "=", ids[1]]) == [ids[1]]  # ids as numbers too
    assert listed(["title", "=", "Buyers"], ["id", "!=", ids[0]]) == [ids[1]]
    assert listed(["id", "in", [ids[0], ids[2]]]) == [ids[0], ids[2]]
    assert listed(["id", "=", "999999"]) == []
    refused = call(xtremepush, "list/list", condition=[["colour", "=", "red"]])
    assert refused.status_code == 400 and refused.json()["success"] is False
