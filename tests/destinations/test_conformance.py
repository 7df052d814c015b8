"""One conformance suite every connector passes against its partner's emulator (R-INT, R-SYN-5):
credentials checked, one list per cohort, batches at and over the limit, per-member refusals,
429/5xx retried (never sooner than Retry-After) and counted, refusals stop with the partner's
words.

Nothing here names a partner: what differs between them is read from each partner's declared
``Capabilities`` and ``Contract`` (``PartnerSpec.contract``), so a new partner needs no edit
here (``test_new_partner.py`` runs this suite against a partner from a fixture folder)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import httpx
import pytest

from cohortsync.destinations.base import (
    CohortInfo,
    Destination,
    PartnerList,
    PartnerMember,
    RunInfo,
    SnapshotDestination,
)
from cohortsync.destinations.errors import PartnerConfigError, RateLimited
from tests.destinations.conftest import Harness, members_of

COHORT = CohortInfo(5, "Buyers", "bought twice")


def members(destination: Destination, count: int, start: int = 0) -> list[PartnerMember]:
    made = []
    for i in range(start, start + count):
        profile = {"$email": f"user-{i}@example.com", "$first_name": "Ada", "plan": "pro"}
        member = destination.member(f"user-{i}", profile)
        assert isinstance(member, PartnerMember)
        made.append(member)
    return made


def chunks(items: Sequence[PartnerMember], size: int) -> list[Sequence[PartnerMember]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def settle(destination: Destination, target: PartnerList, keys: Iterable[str]) -> PartnerList:
    """Where membership is set whole (``snapshot_membership``), hand over the keys acknowledged
    so far, as the sync engine does at the end of every run; elsewhere the list holds them
    already."""
    if not destination.capabilities.snapshot_membership:
        return target
    assert isinstance(destination, SnapshotDestination)
    return destination.replace_members(target, *members_of(list(keys)))


def wrong_credentials(harness: Harness) -> dict[str, str]:
    return {name: f"wrong-{value}" for name, value in harness.sandbox.state.credentials.items()}


def test_check_passes_with_good_credentials_and_stops_with_the_partners_words(
    harness: Harness,
) -> None:
    harness.destination().check()
    bad = harness.destination(**wrong_credentials(harness))
    with pytest.raises(PartnerConfigError) as refused:
        bad.check()
    assert harness.contract.refusal in refused.value.message
    assert harness.sleeps == []  # a refusal is not retried


def test_ensure_list_twice_makes_one_list(harness: Harness) -> None:
    destination = harness.destination()
    first = destination.ensure_list(harness.list_name(COHORT), COHORT)
    second = destination.ensure_list(harness.list_name(COHORT), COHORT)
    assert first.id == second.id
    outcome = destination.add_members(first, members(destination, 1))
    for target in (first, second):
        settle(destination, target, outcome.accepted)
    named = [x for x in harness.sandbox.state.lists.values() if x.name == first.name]
    assert len(named) == 1


def test_add_and_remove_in_batches_at_the_limit(harness: Harness) -> None:
    destination = harness.destination()
    limit = destination.capabilities.max_batch
    everyone = members(destination, limit + 7)
    target = destination.ensure_list(harness.list_name(COHORT), COHORT)
    destination.begin_run(RunInfo("session-1", adds=len(everyone), removes=limit))
    for batch in chunks(everyone, limit):
        outcome = destination.add_members(target, batch)
        assert outcome.rejected == []
        assert outcome.accepted == [m.key for m in batch]
    target = settle(destination, target, [m.key for m in everyone])
    state = harness.sandbox.state
    assert state.members(target.name) == {m.key for m in everyone}
    leaving, staying = everyone[:limit], everyone[limit:]
    outcome = destination.remove_members(target, leaving)
    assert sorted(outcome.accepted) == sorted(m.key for m in leaving)
    settle(destination, target, {m.key for m in everyone} - set(outcome.accepted))
    assert state.members(target.name) == {m.key for m in staying}


def test_a_batch_over_the_limit_is_refused_by_the_partner(harness: Harness) -> None:
    destination = harness.destination()
    target = destination.ensure_list(harness.list_name(COHORT), COHORT)
    too_many = members(destination, destination.capabilities.max_batch + 1)
    with pytest.raises(PartnerConfigError):
        destination.add_members(target, too_many)
    assert harness.sandbox.state.members(target.name) == set()


def test_members_the_partner_refuses_are_reported_one_by_one(harness: Harness) -> None:
    if not harness.contract.rejects_members:
        reason = "acknowledges a batch as a whole (Contract.rejects_members is False)"
        pytest.skip(f"{harness.spec.title} {reason}")
    destination = harness.destination()
    target = destination.ensure_list(harness.list_name(COHORT), COHORT)
    batch = members(destination, 10)
    refused = {batch[3].key, batch[7].key}
    harness.sandbox.state.faults.reject_keys = set(refused)
    outcome = destination.add_members(target, batch)
    assert {r.key for r in outcome.rejected} == refused
    assert all(r.reason for r in outcome.rejected)
    assert set(outcome.accepted) == {m.key for m in batch} - refused
    settle(destination, target, outcome.accepted)
    assert harness.sandbox.state.members(target.name) == {m.key for m in batch} - refused


def test_429_with_retry_after_and_5xx_are_retried_and_counted(harness: Harness) -> None:
    destination = harness.destination()
    target = destination.ensure_list(harness.list_name(COHORT), COHORT)
    faults = harness.sandbox.state.faults
    faults.rate_limit_next, faults.retry_after, faults.server_error_next = 2, "7", 1
    batch = members(destination, 3)
    outcome = destination.add_members(target, batch)
    assert sorted(outcome.accepted) == sorted(m.key for m in batch)
    settle(destination, target, outcome.accepted)
    assert harness.sandbox.state.members(target.name) == {m.key for m in batch}
    assert harness.sleeps[:2] == [7.0, 7.0]  # never sooner than Retry-After
    assert 0 <= harness.sleeps[2] <= 2  # 5xx: jittered backoff under the cap
    assert destination.stats.retries == 3
    assert destination.stats.rate_limited == 2
    assert destination.stats.server_errors == 1


def test_429_without_retry_after_backs_off_then_gives_up_within_the_budget(
    harness: Harness,
) -> None:
    destination = harness.destination()
    target = destination.ensure_list(harness.list_name(COHORT), COHORT)
    harness.sandbox.state.faults.rate_limit_next = 100
    with pytest.raises(RateLimited):
        destination.add_members(target, members(destination, 2))
    assert len(harness.sleeps) == 4  # five tries in all
    assert all(0 <= s <= 2 for s in harness.sleeps)
    assert harness.sandbox.state.members(target.name) == set()


def test_credentials_revoked_mid_run_stop_with_the_partners_words(harness: Harness) -> None:
    destination = harness.destination()
    target = destination.ensure_list(harness.list_name(COHORT), COHORT)
    outcome = destination.add_members(target, members(destination, 5))
    target = settle(destination, target, outcome.accepted)
    state = harness.sandbox.state
    control = httpx.post(
        f"{harness.sandbox.server.url}/_sandbox/faults", json={"bad_credentials": True}
    )
    assert control.status_code == 200
    with pytest.raises(PartnerConfigError) as refused:
        destination.add_members(target, members(destination, 5, start=5))
    assert harness.contract.refusal in refused.value.message
    assert harness.sleeps == []
    assert len(state.members(target.name)) == 5
