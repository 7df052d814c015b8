"""The membership diff (R-SYN-3): the cohort as it is now against what the partner acknowledged.

Both sides arrive sorted by canonical distinct_id, so the diff is one merge pass whose memory
does not grow with the cohort. A member whose partner identity changed is removed under the old
key and added under the new; a member whose export columns changed is sent again as an update;
a member who can no longer be matched (lost their email, say) is removed and counted as skipped.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from cohortsync.destinations.base import PartnerMember, Skip

Op = Literal["remove", "add", "update"]
REMOVE: Op = "remove"
ADD: Op = "add"
UPDATE: Op = "update"


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """A member the partner confirmed is on the list, with what was sent for them."""

    distinct_id: str
    key: str
    digest: int
    fields: str  # JSON of the member's fields, enough to remove them later


@dataclass(frozen=True, slots=True)
class Change:
    """One member to add, update or remove."""

    op: Op
    distinct_id: str
    key: str
    digest: int
    fields: str

    def member(self) -> PartnerMember:
        """The member as a connector takes it."""
        return PartnerMember(self.key, self.distinct_id, orjson.loads(self.fields))


@dataclass
class DiffTally:
    """What a diff saw: cohort size and skips by reason."""

    members: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def matched(self) -> int:
        """Members that can be sent to the partner."""
        return self.members - sum(self.skipped.values())


def encode_fields(fields: Any) -> tuple[str, int]:
    """A member's fields as canonical JSON and a 63-bit digest of it."""
    data = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    digest = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") >> 1
    return data.decode(), digest


def _added(member: PartnerMember, op: Op = ADD) -> Change:
    fields, digest = encode_fields(member.fields)
    return Change(op, member.distinct_id, member.key, digest, fields)


def _removed(ack: Acknowledged) -> Change:
    return Change(REMOVE, ack.distinct_id, ack.key, ack.digest, ack.fields)


def member_diff(
    current: Iterable[tuple[str, PartnerMember | Skip]],
    acknowledged: Iterable[Acknowledged],
    tally: DiffTally,
) -> Iterator[Change]:
    """The changes that make the acknowledged list equal the matchable part of ``current``.

    Both inputs must be sorted by distinct_id (code point order) without repeats.
    """
    cur_iter, ack_iter = iter(current), iter(acknowledged)
    cur = next(cur_iter, None)
    ack = next(ack_iter, None)
    while cur is not None or ack is not None:
        if ack is None or (cur is not None and cur[0] < ack.distinct_id):
            assert cur is not None
            tally.members += 1
            outcome = cur[1]
            if isinstance(outcome, Skip):
                tally.skipped[outcome.reason] += 1
            else:
                yield _added(outcome)
            cur = next(cur_iter, None)
        elif cur is None or ack.distinct_id < cur[0]:
            yield _removed(ack)
            ack = next(ack_iter, None)
        else:
            tally.members += 1
            outcome = cur[1]
            if isinstance(outcome, Skip):
                tally.skipped[outcome.reason] += 1
                yield _removed(ack)
            elif outcome.key != ack.key:
                yield _removed(ack)
                yield _added(outcome)
            else:
                change = _added(outcome, UPDATE)
                if change.digest != ack.digest:
                    yield change
            cur = next(cur_iter, None)
            ack = next(ack_iter, None)
