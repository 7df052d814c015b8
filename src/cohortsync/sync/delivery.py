"""Sending one batch: cut from the plan at the partner's limits, refused batches split.

A partner that refuses a whole batch (400, 413, 422) may be refusing one bad member: the batch
is halved until the refused members stand alone, and they are reported as rejections. When
every part keeps failing the request itself is wrong, and the refusal stops the run instead of
costing a call per member.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from cohortsync.destinations.base import Destination, PartnerList, Rejection
from cohortsync.destinations.errors import PartnerConfigError
from cohortsync.sync.diff import REMOVE, Change

SPLITTABLE = (400, 413, 422)
BODY_SHARE = 0.8  # of the partner's body limit a batch may fill (the envelope needs the rest)


class SystemicRefusal(PartnerConfigError):
    """Every part of a split batch was refused: the request, not its members, is wrong."""


def next_batch(
    page: Sequence[tuple[int, Change]], max_body: int | None
) -> list[tuple[int, Change]]:
    """The leading changes of one kind (removals, or adds and updates), within the body limit."""
    removing = page[0][1].op == REMOVE
    limit = int(max_body * BODY_SHARE) if max_body else None
    size = 0
    batch: list[tuple[int, Change]] = []
    for seq, change in page:
        if (change.op == REMOVE) != removing:
            break
        size += len(change.fields) + 64
        if limit is not None and batch and size > limit:
            break
        batch.append((seq, change))
    return batch


def deliver(
    destination: Destination, target: PartnerList, changes: Sequence[Change]
) -> tuple[set[str], list[Rejection]]:
    """Send one batch of one kind; the member keys the partner took, and its refusals."""
    call = destination.remove_members if changes[0].op == REMOVE else destination.add_members
    failures_left = 2 * math.ceil(math.log2(max(len(changes), 2))) + 8

    def attempt(part: Sequence[Change]) -> tuple[set[str], list[Rejection]]:
        nonlocal failures_left
        try:
            outcome = call(target, [c.member() for c in part])
        except PartnerConfigError as error:
            if error.status not in SPLITTABLE:
                raise
            failures_left -= 1
            if len(part) == 1:
                return set(), [Rejection(part[0].key, error.message)]
            if failures_left <= 0:
                raise SystemicRefusal(
                    f"the partner refused every part of the batch: {error.message}", error.status
                ) from None
            middle = len(part) // 2
            left, right = attempt(part[:middle]), attempt(part[middle:])
            return left[0] | right[0], left[1] + right[1]
        known = {c.key for c in part}
        return {key for key in outcome.accepted if key in known}, list(outcome.rejected)

    return attempt(changes)
