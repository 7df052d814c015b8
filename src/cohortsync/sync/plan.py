"""Planning a run (R-SYN-3): evaluate the cohort, map each member to the partner, diff.

Members stream from the database in distinct_id order and are mapped one at a time, so memory is
bounded by the database's fetch size, not by the cohort. A member without a profile (or known only
by a device id) is anonymous and skipped; the connector names every other reason to skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy.engine import Connection, Engine

from cohortsync.destinations.base import Destination, PartnerMember, Skip
from cohortsync.domain.errors import BatchError
from cohortsync.domain.identity import DEVICE_PREFIX
from cohortsync.storage.cohort_store import CohortStore
from cohortsync.storage.database import read_transaction
from cohortsync.sync.diff import Change, DiffTally, member_diff
from cohortsync.sync.ledger import acknowledged

ANONYMOUS = "anonymous"
DUPLICATE = "duplicate partner id"

# (connection, project id, cohort id, as of ms) -> (distinct_id, profile) sorted by distinct_id
MemberSource = Callable[[Connection, int, int, int], Iterable[tuple[str, Mapping[str, Any]]]]


class CohortTooLarge(BatchError):
    """The cohort is over the member limit (R-SYN-9)."""

    code = "cohort_too_large"


def cohort_members(
    connection: Connection, project_id: int, cohort_id: int, as_of_ms: int
) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """The cohort's members with their profiles, streamed in code point order of distinct_id."""
    return CohortStore(connection).stream_members(project_id, cohort_id, as_of_ms)


def partner_view(
    members: Iterable[tuple[str, Mapping[str, Any]]], destination: Destination
) -> Iterator[tuple[str, PartnerMember | Skip]]:
    """Each member as the partner will see them, or why they are skipped."""
    anonymous = Skip(ANONYMOUS)
    for distinct_id, profile in members:
        if not profile or distinct_id.startswith(DEVICE_PREFIX):
            yield distinct_id, anonymous
        else:
            yield distinct_id, destination.member(distinct_id, profile)


def _noting_skips(
    view: Iterable[tuple[str, PartnerMember | Skip]], on_skip: Callable[[str, str], None]
) -> Iterator[tuple[str, PartnerMember | Skip]]:
    for distinct_id, outcome in view:
        if isinstance(outcome, Skip):
            on_skip(distinct_id, outcome.reason)
        yield distinct_id, outcome


def _limited(
    members: Iterable[tuple[str, Mapping[str, Any]]], limit: int, cohort_id: int
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for count, member in enumerate(members, 1):
        if count > limit:
            raise CohortTooLarge(
                f"cohort {cohort_id} has more than {limit:,} members, the most a sync may send; "
                "narrow the cohort or raise COHORTSYNC_SYNC_MAX_MEMBERS"
            )
        yield member


def plan_changes(
    engine: Engine,
    *,
    sync_id: int,
    project_id: int,
    cohort_id: int,
    as_of_ms: int,
    destination: Destination,
    sink: Callable[[Change], None],
    source: MemberSource = cohort_members,
    max_members: int = 10_000_000,
    on_skip: Callable[[str, str], None] | None = None,
) -> DiffTally:
    """Diff the cohort as of ``as_of_ms`` against the sync's acknowledged members, handing each
    change to ``sink`` (and each skipped member, with the reason, to ``on_skip``); returns the
    cohort size and the skips by reason."""
    tally = DiffTally()
    with read_transaction(engine) as connection:
        members = _limited(
            source(connection, project_id, cohort_id, as_of_ms), max_members, cohort_id
        )
        current = partner_view(members, destination)
        if on_skip is not None:
            current = _noting_skips(current, on_skip)
        for change in member_diff(current, acknowledged(connection, sync_id), tally):
            sink(change)
    return tally
