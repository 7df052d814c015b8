"""The membership diff (R-SYN-3): the cohort as it is now against what the partner acknowledged.

Both sides arrive sorted by canonical distinct_id, so the diff is one merge pass whose memory
does not grow with the cohort. A member whose partner identity changed is removed under the old
key and added under the new; a member whose export columns changed is sent again as an update;
a member who can no longer be matched (lost their email, say) is removed and counted as skipped.
Fields are compared as canonical JSON text, and a change is built only for members that changed.
"""

from __future__ import annotations

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
    fields: str  # canonical JSON of the member's fields as last sent


@dataclass(frozen=True, slots=True)
class Change:
    """One member to add, update or remove."""

    op: Op
    distinct_id: str
    key: str
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


def encode_fields(fields: Any) -> str:
    """A member's fields as canonical JSON (sorted keys), so equal fields give equal text."""
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode()


def _added(member: PartnerMember) -> Change:
    return Change(ADD, member.distinct_id, member.key, encode_fields(member.fields))


def _removed(ack: Acknowledged) -> Change:
    return Change(REMOVE, ack.distinct_id, ack.key, ack.fields)


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
                fields = encode_fields(outcome.fields)
                if fields != ack.fields:
                    yield Change(UPDATE, ack.distinct_id, outcome.key, fields)
            cur = next(cur_iter, None)
            ack = next(ack_iter, None)
