"""Iterable's documented rules (shared/PARTNER_FACTS.md), first as the emulator holds them
whoever calls it (plain HTTP on loopback: who a subscriber is, placeholder users, failures
inside a 200, channel unsubscribes, the 5-a-minute read budget, lists in use), then as the
connector keeps them: users matched by email and never made as placeholders, removals that
leave the channel alone, its list found by id, lists other syncs own left alone, and member
reads paced so the budget is never exceeded, however many syncs of the account read."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from cohortsync.credentials import new_secret
from cohortsync.destinations import registry
from cohortsync.destinations.base import CohortInfo, PartnerList, PartnerMember
from cohortsync.destinations.connection import ConnectorConfig
from cohortsync.destinations.http import AccountBudget, RetryPolicy, account_budget
from cohortsync.outbound.guard import OutboundGuard
from cohortsync.partners.iterable.destination import CAPABILITIES, IterableDestination
from cohortsync.partners.iterable.emulator import IterableSandbox
from cohortsync.sandbox.fleet import RunningSandbox, start_sandbox

COHORT = CohortInfo(8, "Buyers", "bought twice")


@dataclass
class Clock:
    """A monotonic clock the test moves; its ``sleep`` moves it instead of waiting."""

    now: float = 5_000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class Project:
    """One emulated Iterable project, with a fresh API key and a clock the test drives."""

    sandbox: RunningSandbox
    clock: Clock
    http: httpx.Client

    @property
    def state(self) -> IterableSandbox:
        assert isinstance(self.sandbox.state, IterableSandbox)
        return self.sandbox.state

    @property
    def url(self) -> str:
        return self.sandbox.server.url

    def call(self, method: str, path: str, **options: Any) -> httpx.Response:
        headers = {"Api-Key": self.state.credentials["api_key"]}
        return self.http.request(method, f"{self.url}{path}", headers=headers, **options)

    def new_list(self, name: str = "Buyers") -> int:
        created = self.call("POST", "/api/lists", json={"name": name})
        assert created.status_code == 200, created.text
        list_id: int = created.json()["listId"]
        return list_id

    def subscribe(self, list_id: int, *subscribers: dict[str, Any]) -> dict[str, Any]:
        reply = self.call(
            "POST", "/api/lists/subscribe", json={"listId": list_id, "subscribers": subscribers}
        )
        assert reply.status_code == 200, reply.text  # per-user failures come inside a 200
        body: dict[str, Any] = reply.json()
        return body

    def held(self, list_id: int) -> set[str]:
        with self.state.lock:
            return set(self.state.lists[str(list_id)].members)


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningSandbox]:
    running = start_sandbox("iterable")
    yield running
    running.server.stop()


@pytest.fixture
def project(emulator: RunningSandbox) -> Iterator[Project]:
    """The module's emulator emptied, under a new key (so a new account budget) and clock."""
    emulator.state.reset()
    emulator.state.credentials["api_key"] = new_secret()
    clock = Clock()
    assert isinstance(emulator.state, IterableSandbox)
    emulator.state.clock = clock
    with httpx.Client() as http:
        yield Project(emulator, clock, http)


def test_a_user_id_alone_with_prefer_user_id_makes_a_placeholder_user_not_a_match(
    project: Project,
) -> None:
    list_id = project.new_list()
    project.subscribe(list_id, {"email": "ada@x.io", "userId": "it-ada"})
    reply = project.subscribe(list_id, {"userId": "mp-ada", "preferUserId": True})
    assert reply["successCount"] == 1 and reply["failCount"] == 0
    assert project.held(list_id) == {"ada@x.io", "mp-ada@placeholder.email"}  # a duplicate
    assert project.state.users["mp-ada@placeholder.email"].user_id == "mp-ada"
    assert project.state.users["ada@x.io"].user_id == "it-ada"  # Ada herself untouched
    # A userId someone has is a match, preferUserId or not: no third user.
    project.subscribe(list_id, {"userId": "it-ada", "preferUserId": True})
    assert set(project.state.users) == {"ada@x.io", "mp-ada@placeholder.email"}


def test_a_user_id_alone_without_prefer_user_id_is_not_found_inside_a_200(
    project: Project,
) -> None:
    list_id = project.new_list()
    reply = project.subscribe(list_id, {"userId": "mp-ada"}, {"email": "bo@x.io"})
    assert reply["successCount"] == 1 and reply["failCount"] == 1
    failed = reply["failedUpdates"]
    assert failed["notFoundUserIds"] == ["mp-ada"]
    assert all(failed[name] == [] for name in failed if name != "notFoundUserIds")
    assert reply["invalidEmails"] == [] and reply["invalidUserIds"] == []  # deprecated copies
    assert project.held(list_id) == {"bo@x.io"}
    assert set(project.state.users) == {"bo@x.io"}


def test_email_with_a_user_id_overwrites_the_stored_user_id(project: Project) -> None:
    list_id = project.new_list()
    project.subscribe(list_id, {"email": "ada@x.io", "userId": "it-ada"})
    project.subscribe(list_id, {"email": "ada@x.io", "userId": "mp-ada"})  # email wins
    assert project.state.users["ada@x.io"].user_id == "mp-ada"
    gone = project.subscribe(list_id, {"userId": "it-ada"})
    assert gone["failedUpdates"]["notFoundUserIds"] == ["it-ada"]
    taken = project.subscribe(list_id, {"email": "bo@x.io", "userId": "mp-ada"})
    assert taken["failedUpdates"]["conflictUserIds"] == ["mp-ada"]  # Ada's userId now
    assert project.held(list_id) == {"ada@x.io"}


def test_an_email_inside_data_fields_identifies_nobody(project: Project) -> None:
    list_id = project.new_list()
    project.subscribe(list_id, {"email": "ada@x.io"})
    reply = project.subscribe(
        list_id,
        {"dataFields": {"$email": "ada@x.io", "plan": "pro"}},
        {"userId": "mp-ada", "dataFields": {"$email": "ada@x.io"}},
    )
    assert reply["successCount"] == 0 and reply["failCount"] == 2
    assert reply["failedUpdates"]["notFoundUserIds"] == ["mp-ada"]
    assert set(project.state.users) == {"ada@x.io"}
    assert project.state.users["ada@x.io"].data_fields == {}  # nothing reached Ada
    assert project.held(list_id) == {"ada@x.io"}


def test_unsubscribe_by_email_or_user_id_and_channel_unsubscribes_are_recorded(
    project: Project,
) -> None:
    list_id = project.new_list()
    project.subscribe(list_id, {"email": "ada@x.io", "userId": "it-ada"}, {"email": "bo@x.io"})
    kept = project.call(
        "POST",
        "/api/lists/unsubscribe",
        json={
            "listId": list_id,
            "subscribers": [{"userId": "it-ada"}],
            "channelUnsubscribe": False,
        },
    )
    assert kept.json()["successCount"] == 1
    assert project.held(list_id) == {"bo@x.io"}
    assert project.state.channel_unsubscribes == []
    channel = project.call(
        "POST",
        "/api/lists/unsubscribe",
        json={
            "listId": list_id,
            "subscribers": [{"email": "bo@x.io"}, {"email": "nobody@x.io"}],
            "channelUnsubscribe": True,
        },
    )
    assert channel.json()["failedUpdates"]["notFoundEmails"] == ["nobody@x.io"]
    assert project.held(list_id) == set()
    assert project.state.channel_unsubscribes == ["bo@x.io"]


def test_get_users_answers_five_calls_a_minute_then_rate_limit_exceeded(
    project: Project,
) -> None:
    list_id = project.new_list()
    project.subscribe(list_id, {"email": "ada@x.io", "userId": "it-ada"}, {"email": "bo@x.io"})
    for _ in range(4):
        reply = project.call("GET", "/api/lists/getUsers", params={"listId": list_id})
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/plain")
        assert reply.text == "ada@x.io\nbo@x.io\n"
        project.clock.now += 10
    size = project.call("GET", f"/api/lists/{list_id}/size")  # the same budget
    assert (size.status_code, size.text) == (200, "2")
    project.clock.now += 10  # 50 s after the first call: the sixth in a minute
    refused = project.call("GET", "/api/lists/getUsers", params={"listId": list_id})
    assert refused.status_code == 429
    assert refused.json()["code"] == "RateLimitExceeded"
    assert "retry-after" not in refused.headers  # not documented: the emulator sends none
    project.clock.now += 10  # 60 s after the first call: it has left the minute
    by_id = project.call(
        "GET", "/api/lists/getUsers", params={"listId": list_id, "preferUserId": "true"}
    )
    assert (by_id.status_code, by_id.text) == (200, "it-ada\nbo@x.io\n")
    assert (project.state.reads, project.state.reads_refused) == (7, 1)
    project.state.reads_per_minute = None  # a test that wants no budget switches it off
    for _ in range(10):
        assert project.call("GET", f"/api/lists/{list_id}/size").status_code == 200
    assert project.state.reads_refused == 1


def test_a_list_in_use_is_not_deleted_and_names_may_repeat(project: Project) -> None:
    first, second = project.new_list("Buyers"), project.new_list("Buyers")
    assert first != second
    project.state.lists_in_use.add(str(first))
    refused = project.call("DELETE", f"/api/lists/{first}")
    assert refused.status_code == 409
    assert refused.json()["msg"] == "List is in use"
    assert project.call("DELETE", f"/api/lists/{second}").status_code == 200
    lists = project.call("GET", "/api/lists").json()["lists"]
    assert [(x["id"], x["name"]) for x in lists] == [(first, "Buyers")]


def test_an_unknown_list_is_a_400_whose_code_says_success(project: Project) -> None:
    reply = project.call(
        "POST", "/api/lists/subscribe", json={"listId": 999, "subscribers": [{"email": "a@x.io"}]}
    )
    assert reply.status_code == 400
    assert reply.json()["code"] == "Success"
    assert project.state.users == {}


# The connector ------------------------------------------------------------------------------


def connect(project: Project, simplified_id_merge: bool = False) -> IterableDestination:
    """A connector on the project's emulator whose waits move the project's clock, as every
    sync of this account would be."""
    key = project.state.credentials["api_key"]
    account_budget("iterable", key, CAPABILITIES, read_clock=project.clock)
    spec = registry.partner("iterable")
    settings = registry.check_settings(spec, {"base_url": project.url}, allow_custom_endpoints=True)
    config = ConnectorConfig(
        credentials={"api_key": key},
        settings=settings,
        base_url=registry.base_url(spec, settings),
        simplified_id_merge=simplified_id_merge,
        retry=RetryPolicy(attempts=3, base_seconds=0.1, cap_seconds=1),
        sleep=project.clock.sleep,
        rng=random.Random(3),
        guard=OutboundGuard(allow_private=True),  # the emulator listens on loopback
    )
    destination = spec.build(config)
    assert isinstance(destination, IterableDestination)
    return destination


def members(destination: IterableDestination, *profiles: dict[str, str]) -> list[PartnerMember]:
    made = []
    for given in profiles:
        profile = dict(given)
        member = destination.member(profile.pop("distinct_id"), profile)
        assert isinstance(member, PartnerMember)
        made.append(member)
    return made


def test_members_are_matched_by_email_and_keep_their_iterable_user_id(project: Project) -> None:
    elsewhere = project.new_list("Newsletter")
    project.subscribe(
        elsewhere,
        {"email": "ada@x.io", "userId": "it-ada"},
        {"email": "bo@x.io", "userId": "it-bo"},
    )
    destination = connect(project, simplified_id_merge=True)  # distinct_id = $user_id
    target = destination.ensure_list("mixpanel_Buyers_8", COHORT)
    everyone = members(
        destination,
        {"distinct_id": "mp-ada", "$email": "ada@x.io", "$iterable_user_id": "it-ada"},
        {"distinct_id": "mp-bo", "$email": "bo@x.io"},  # no $iterable_user_id
        {"distinct_id": "mp-cy", "$email": "cy@x.io"},  # new to Iterable
    )
    outcome = destination.add_members(target, everyone)
    assert outcome.accepted == ["ada@x.io", "bo@x.io", "cy@x.io"] and outcome.rejected == []
    state = project.state
    assert state.members(target.name) == {"ada@x.io", "bo@x.io", "cy@x.io"}
    assert set(state.users) == {"ada@x.io", "bo@x.io", "cy@x.io"}  # no placeholder users
    # Nobody's Iterable id was overwritten by a distinct_id.
    assert {e: u.user_id for e, u in state.users.items()} == {
        "ada@x.io": "it-ada",
        "bo@x.io": "it-bo",
        "cy@x.io": None,
    }
    assert state.users["cy@x.io"].data_fields == {"$distinct_id": "mp-cy", "$email": "cy@x.io"}


def test_refusals_inside_a_200_are_rejections(project: Project) -> None:
    elsewhere = project.new_list("Newsletter")
    project.subscribe(elsewhere, {"email": "ada@x.io", "userId": "it-ada"})
    destination = connect(project)
    target = destination.ensure_list("mixpanel_Buyers_8", COHORT)
    clash, fine = members(
        destination,
        {"distinct_id": "b", "$email": "bo@x.io", "$iterable_user_id": "it-ada"},  # Ada's id
        {"distinct_id": "c", "$email": "cy@x.io"},
    )
    outcome = destination.add_members(target, [clash, fine])
    assert outcome.accepted == ["cy@x.io"]
    assert [(r.key, r.reason) for r in outcome.rejected] == [("bo@x.io", "userId conflict")]
    assert project.state.members(target.name) == {"cy@x.io"}


def test_removal_is_by_email_and_keeps_the_channel_subscription(project: Project) -> None:
    destination = connect(project)
    target = destination.ensure_list("mixpanel_Buyers_8", COHORT)
    everyone = members(
        destination,
        {"distinct_id": "a", "$email": "ada@x.io", "$iterable_user_id": "it-ada"},
        {"distinct_id": "b", "$email": "bo@x.io"},
    )
    destination.add_members(target, everyone)
    outcome = destination.remove_members(target, everyone[:1])
    assert outcome.accepted == ["ada@x.io"]
    assert project.state.members(target.name) == {"bo@x.io"}
    assert project.state.channel_unsubscribes == []
    assert "ada@x.io" in project.state.users  # off the list, still a user


def test_find_list_follows_the_partner_and_says_none_once_the_list_is_deleted(
    project: Project,
) -> None:
    destination = connect(project)
    target = destination.ensure_list("mixpanel_Buyers_8", COHORT)
    project.state.edit_by_hand(target.id, rename="Buyers (marketing)")
    renamed = PartnerList(target.id, "Buyers (marketing)", COHORT)
    assert destination.find_list(target.id, COHORT) == renamed
    assert project.call("DELETE", f"/api/lists/{target.id}").status_code == 200
    assert destination.find_list(target.id, COHORT) is None


def test_ensure_list_leaves_a_same_named_list_another_sync_owns(project: Project) -> None:
    destination = connect(project)
    owned = destination.ensure_list("mixpanel_Buyers_8", COHORT)
    mine = destination.ensure_list("mixpanel_Buyers_8", COHORT, taken=frozenset({owned.id}))
    assert mine.id != owned.id and mine.name == owned.name
    again = destination.ensure_list("mixpanel_Buyers_8", COHORT, taken=frozenset({owned.id}))
    assert again.id == mine.id  # found, not made twice
    assert sorted(project.state.lists) == sorted([owned.id, mine.id])


def test_paced_reads_of_every_sync_of_an_account_never_meet_the_429(project: Project) -> None:
    syncs = [connect(project), connect(project)]  # two syncs, one account, one budget
    target = syncs[0].ensure_list("mixpanel_Buyers_8", COHORT)
    project.subscribe(int(target.id), {"email": "ada@x.io", "userId": "it-ada"})
    project.subscribe(int(target.id), {"email": "bo@x.io"})
    for turn in range(12):
        assert list(syncs[turn % 2].read_members(target)) == ["ada@x.io", "bo@x.io"]
    assert (project.state.reads, project.state.reads_refused) == (12, 0)
    assert all(d.stats.rate_limited == 0 and d.stats.retries == 0 for d in syncs)
    assert len(project.clock.slept) == 11  # every read after the first waited its turn
    assert all(wait >= 12 for wait in project.clock.slept)
    # A minute later, reads unpaced: the sixth of the minute is refused.
    project.clock.now += 60
    for _ in range(6):
        project.call("GET", "/api/lists/getUsers", params={"listId": target.id})
    assert project.state.reads_refused == 1


def test_a_read_iterable_answers_503_is_retried_in_a_read_turn_of_its_own(
    project: Project,
) -> None:
    destination = connect(project)
    target = destination.ensure_list("mixpanel_Buyers_8", COHORT)
    project.subscribe(int(target.id), {"email": "ada@x.io"})
    project.state.faults.server_error_next = 1
    assert list(destination.read_members(target)) == ["ada@x.io"]
    assert destination.stats.server_errors == 1 and destination.stats.retries == 1
    backoff, turn = project.clock.slept
    assert backoff <= 1 and backoff + turn == pytest.approx(12.5)  # the retry waited its turn


def test_read_turns_never_pile_up_when_sleeps_are_only_recorded() -> None:
    budget = AccountBudget(4, None, reads_per_minute=5, read_clock=lambda: 100.0)  # time stands
    recorded: list[float] = []
    waits = [budget.read_turn(recorded.append) for _ in range(4)]
    assert waits == [0.0, 12.5, 12.5, 12.5]  # 60 s / 5 and a margin, never growing
    assert recorded == [12.5, 12.5, 12.5]


def test_reads_come_line_by_line_as_the_reply_arrives() -> None:
    pulled: list[int] = []

    class Lines(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            for chunk in range(3):
                pulled.append(chunk)
                yield b"".join(f"u{chunk}-{n}@x.io\n".encode() for n in range(1000))

    spec = registry.partner("iterable")
    config = ConnectorConfig(
        credentials={"api_key": "streamed"},
        settings={"region": "us"},
        base_url=registry.base_url(spec, {"region": "us"}),
        sleep=lambda _: None,
        transport=httpx.MockTransport(lambda r: httpx.Response(200, stream=Lines())),
    )
    destination = spec.build(config)
    assert isinstance(destination, IterableDestination)
    keys = destination.read_members(PartnerList("7", "l", COHORT))
    assert next(keys) == "u0-0@x.io"
    assert pulled == [0]  # the rest of the reply has not been read yet
    assert sum(1 for _ in keys) == 2999
    assert pulled == [0, 1, 2]
