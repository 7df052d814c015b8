"""The webhook's sessions against the receiver emulator on loopback: a run's pages numbered
from one, and the ``members`` refresh, a session of pages of at most 1,000 that replaces the
cohort's membership once its last page arrives."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cohortsync.destinations.base import CohortInfo, PartnerMember, RunInfo
from cohortsync.partners.webhook.destination import WebhookDestination
from cohortsync.partners.webhook.emulator import WebhookSandbox
from cohortsync.sandbox.fleet import RunningSandbox
from tests.destinations.conftest import Harness, fresh

COHORT = CohortInfo(12, "Cart abandoners", "left a cart")


@pytest.fixture
def receiver(sandboxes: dict[str, RunningSandbox]) -> Harness:
    return fresh(sandboxes, "webhook")


def state(harness: Harness) -> WebhookSandbox:
    assert isinstance(harness.sandbox.state, WebhookSandbox)
    return harness.sandbox.state


def destination(harness: Harness) -> WebhookDestination:
    made = harness.destination()
    assert isinstance(made, WebhookDestination)
    return made


def people(made: WebhookDestination, *ids: str) -> list[PartnerMember]:
    found = [made.member(i, {"$email": f"{i}@example.com", "$first_name": i}) for i in ids]
    return [m for m in found if isinstance(m, PartnerMember)]


def held(harness: Harness) -> set[str]:
    return set(state(harness).lists[str(COHORT.id)].members)


def test_a_refresh_after_a_hand_edit_leaves_exactly_the_members_as_last_sent(
    receiver: Harness,
) -> None:
    webhook = destination(receiver)
    target = webhook.ensure_list("Cart abandoners", COHORT)
    webhook.begin_run(RunInfo("run-1", adds=3, removes=0))
    webhook.add_members(target, people(webhook, "ada", "lin", "mo"))
    state(receiver).edit_by_hand(target.id, add=["intruder"], remove=["ada"])
    assert held(receiver) == {"lin", "mo", "intruder"}

    everyone = people(webhook, "ada", "lin", *(f"user-{i}" for i in range(2_498)))
    refreshed = webhook.replace_members(target, iter(everyone), len(everyone))

    assert refreshed == target
    assert held(receiver) == {m.key for m in everyone}
    kept = state(receiver).lists[target.id].members
    # a receiver that lost its state gets each member whole again: id, email, names
    assert kept["ada"] == {
        "mixpanel_distinct_id": "ada",
        "email": "ada@example.com",
        "first_name": "ada",
    }
    refresh = [s for s in state(receiver).sessions if s != "run-1"]
    assert len(refresh) == 1  # one session of its own, apart from the run's
    assert state(receiver).sessions[refresh[0]] == [
        {"total_pages": 3, "page_count": n} for n in (1, 2, 3)
    ]
    assert state(receiver).received == 3 + len(everyone)  # pages of 1,000, 1,000 and 500


def test_an_empty_refresh_is_one_page_that_empties_the_cohort(receiver: Harness) -> None:
    webhook = destination(receiver)
    target = webhook.ensure_list("Cart abandoners", COHORT)
    webhook.add_members(target, people(webhook, "ada", "mo"))
    webhook.replace_members(target, [], 0)
    assert held(receiver) == set()
    assert state(receiver).last_parameters["page_info"] == {"total_pages": 1, "page_count": 1}


def test_the_webhook_list_is_the_cohort(receiver: Harness) -> None:
    webhook = destination(receiver)
    target = webhook.ensure_list("Cart abandoners", COHORT, taken=frozenset({"99"}))
    assert target.id == "12"
    assert webhook.find_list("12", COHORT) == target
    assert state(receiver).lists == {}  # found and ensured without a call


def send(harness: Harness, body: dict[str, Any]) -> httpx.Response:
    """One protocol message with the receiver's Basic credentials."""
    credentials = harness.sandbox.state.credentials
    auth = (credentials["username"], credentials["password"])
    return httpx.post(harness.sandbox.base_url, json=body, auth=auth)


def post(harness: Harness, action: str, keys: list[str], page: int, total: int) -> None:
    body: dict[str, Any] = {
        "action": action,
        "parameters": {
            "mixpanel_cohort_id": "12",
            "mixpanel_cohort_name": "Cart abandoners",
            "mixpanel_session_id": "refresh-1",
            "page_info": {"total_pages": total, "page_count": page},
            "members": [{"mixpanel_distinct_id": k} for k in keys],
        },
    }
    assert send(harness, body).json() == {"action": action, "status": "success"}


def test_the_receiver_replaces_membership_only_when_the_last_page_arrives(
    receiver: Harness,
) -> None:
    post(receiver, "add_members", ["old-1", "old-2"], 1, 1)
    post(receiver, "members", ["a", "b"], 1, 3)
    post(receiver, "members", ["e"], 3, 3)  # out of order
    assert held(receiver) == {"old-1", "old-2"}  # page 2 is still missing
    post(receiver, "members", ["e"], 3, 3)  # sent again: counts once
    assert held(receiver) == {"old-1", "old-2"}
    post(receiver, "members", ["c", "d"], 2, 3)
    assert held(receiver) == {"a", "b", "c", "d", "e"}
    assert state(receiver).refreshes == {}


def test_the_receiver_refuses_members_without_a_distinct_id(receiver: Harness) -> None:
    body = {"action": "members", "parameters": {"mixpanel_cohort_id": "12", "members": [{}]}}
    reply = send(receiver, body)
    assert reply.status_code == 400 and reply.json()["status"] == "failure"
    assert state(receiver).lists == {}


def test_webhook_pages_of_a_session_are_numbered_from_one(receiver: Harness) -> None:
    webhook = destination(receiver)
    target = webhook.ensure_list(receiver.list_name(COHORT), COHORT)
    everyone = people(webhook, *(f"user-{i}" for i in range(2500)))
    webhook.begin_run(RunInfo("session-42", adds=2500, removes=0))
    for start in range(0, len(everyone), 1000):
        webhook.add_members(target, everyone[start : start + 1000])
    pages = state(receiver).sessions["session-42"]
    assert pages == [{"total_pages": 3, "page_count": n} for n in (1, 2, 3)]
