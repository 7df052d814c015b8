"""Splitting a refused batch (R-SYN-5): bad members are isolated in a few calls, a request the
partner refuses whatever it holds stops the run, and credentials errors are never split.

The partner here is a small in-test Destination (the protocol is this project's seam), so the
call count of each strategy can be asserted exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from cohortsync.destinations.base import (
    BatchOutcome,
    Capabilities,
    CohortInfo,
    PartnerList,
    PartnerMember,
)
from cohortsync.destinations.errors import PartnerConfigError
from cohortsync.partners.iterable.destination import CAPABILITIES
from cohortsync.sync.delivery import SystemicRefusal, deliver, next_batch
from cohortsync.sync.diff import ADD, REMOVE, Change, Op, encode_fields

TARGET = PartnerList("1", "list", CohortInfo(1, "c"))


class PickyPartner:
    """Refuses a whole batch with ``status`` when it holds one of ``bad`` (or always)."""

    capabilities: Capabilities = CAPABILITIES

    def __init__(self, bad: set[str], status: int = 400, always: bool = False) -> None:
        self.bad, self.status, self.always = bad, status, always
        self.calls: list[int] = []
        self.held: set[str] = set()

    def add_members(self, _target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        self.calls.append(len(members))
        if self.always or any(m.key in self.bad for m in members):
            raise PartnerConfigError("invalid member in request", self.status)
        self.held.update(m.key for m in members)
        return BatchOutcome(accepted=[m.key for m in members])

    remove_members = add_members


def _changes(count: int, op: Op = ADD) -> list[Change]:
    return [
        Change(op, f"u{i:04d}", f"u{i:04d}", encode_fields({"email": f"u{i}@x.io"}))
        for i in range(count)
    ]


def test_a_refused_batch_is_split_until_the_bad_members_stand_alone() -> None:
    partner = PickyPartner({"u0100", "u0731"})
    accepted, rejected = deliver(partner, TARGET, _changes(1000))  # type: ignore[arg-type]
    assert {r.key for r in rejected} == {"u0100", "u0731"}
    assert all(r.reason == "invalid member in request" for r in rejected)
    assert accepted == {f"u{i:04d}" for i in range(1000)} - {"u0100", "u0731"}
    assert partner.held == accepted
    assert len(partner.calls) <= 2 * 2 * 10 + 1  # about 2 log2(n) calls per bad member


def test_a_request_refused_whatever_it_holds_stops_instead_of_costing_a_call_a_member() -> None:
    partner = PickyPartner(set(), always=True)
    with pytest.raises(SystemicRefusal, match="refused every part"):
        deliver(partner, TARGET, _changes(1000))  # type: ignore[arg-type]
    assert len(partner.calls) <= 30


@pytest.mark.parametrize("status", [401, 403, 404])
def test_credentials_and_missing_lists_are_not_split(status: int) -> None:
    partner = PickyPartner({"u0001"}, status=status)
    with pytest.raises(PartnerConfigError):
        deliver(partner, TARGET, _changes(10))  # type: ignore[arg-type]
    assert partner.calls == [10]


def test_batches_are_of_one_kind_and_fit_the_body_limit() -> None:
    plan = list(enumerate(_changes(3, REMOVE) + _changes(5, ADD)))
    assert [c.op for _, c in next_batch(plan, None)] == [REMOVE] * 3
    adds = plan[3:]
    one_member = len(adds[0][1].fields) + 64
    assert len(next_batch(adds, max_body=int(2.5 * one_member / 0.8))) == 2
