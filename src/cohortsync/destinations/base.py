"""The destination protocol every partner connector implements, and its declared capabilities.

A connector writes what is specific to its partner (paths, headers, bodies, quirks); batching,
retry budgets, checkpoints and diffs belong to the sync engine. Calls are synchronous and
thread-safe; ``add_members``/``remove_members`` take at most ``capabilities.max_batch`` members.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from cohortsync.destinations.http import CallStats


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a partner allows: the sync engine plans batches and budgets from these."""

    max_batch: int
    max_concurrency: int
    requests_per_second: float | None
    max_body_bytes: int | None
    interval: timedelta  # the default period of a dynamic sync
    reads_members: bool = False  # ReadableDestination: the list can be read back (R-X-2)
    snapshot_membership: bool = False  # SnapshotDestination: membership is set whole each run
    reads_per_minute: float | None = None  # the partner's budget for read_members calls


@dataclass(frozen=True, slots=True)
class CohortInfo:
    """The cohort a destination list stands for."""

    id: int
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class PartnerList:
    """A list (segment, user list, webhook cohort) on the partner's side."""

    id: str
    name: str
    cohort: CohortInfo
    created: bool = False  # made by the call that returned it (so it is known to be empty)


@dataclass(frozen=True, slots=True)
class PartnerMember:
    """One cohort member as the partner will see it.

    ``key`` is the partner-side identity (email, userId, CleverTap identity, distinct_id): the
    unit of acknowledgement. ``fields`` are the export columns (R-INT-6).
    """

    key: str
    distinct_id: str
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A member the partner refused, with the partner's reason."""

    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class Skip:
    """Why a cohort member cannot be sent to a partner (anonymous, missing email, …)."""

    reason: str


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Told to a destination before a run sends its first batch."""

    session_id: str
    adds: int
    removes: int
    batches_done: int = 0  # a resumed run: batches already acknowledged before the restart


@dataclass(slots=True)
class BatchOutcome:
    """The partner's answer to one add or remove call: what it took and what it refused."""

    accepted: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


@runtime_checkable
class Destination(Protocol):
    """A connected partner account that holds member lists."""

    capabilities: Capabilities

    @property
    def stats(self) -> CallStats:
        """Requests, retries, 429s, 5xx and timeouts so far."""
        ...

    def check(self) -> None:
        """A harmless call proving the credentials work; raises PartnerConfigError if not."""
        ...

    def member(self, distinct_id: str, profile: Mapping[str, Any]) -> PartnerMember | Skip:
        """The partner's view of a cohort member from their profile, or why they are skipped."""
        ...

    def begin_run(self, run: RunInfo) -> None:
        """Announce a run (its session id and size) before its first batch."""
        ...

    def find_list(self, list_id: str, cohort: CohortInfo) -> PartnerList | None:
        """The list with this partner id, or None when the partner no longer has it (deleted
        on the partner's side: the sync engine then makes a new one and refills it whole)."""
        ...

    def ensure_list(
        self, name: str, cohort: CohortInfo, taken: frozenset[str] = frozenset()
    ) -> PartnerList:
        """Find the list named ``name`` whose id is not in ``taken`` (lists other syncs own),
        creating it if there is none (calling twice makes one)."""
        ...

    def add_members(self, target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        """Put members on the list."""
        ...

    def remove_members(self, target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        """Take members off the list."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class ReadableDestination(Destination, Protocol):
    """A destination that can list the members it holds (read-back reconciliation, R-X-2)."""

    def read_members(self, target: PartnerList) -> Iterator[str]:
        """The keys of every member on the list (the same keys ``member`` gives)."""
        ...


@runtime_checkable
class SnapshotDestination(Destination, Protocol):
    """A destination whose list membership can be set whole. Where ``snapshot_membership`` is
    declared (CleverTap's custom-list upload with ``replace``) the engine hands over every
    acknowledged member at the end of every run, and ``add_members``/``remove_members`` carry
    only the members' profiles; elsewhere (the webhook's ``members`` refresh) it does so when
    the list may have drifted."""

    def replace_members(
        self, target: PartnerList, members: Iterable[PartnerMember], total: int
    ) -> PartnerList:
        """Make the list hold exactly ``members`` (``total`` of them, streamed, each with the
        fields last sent); returns the list (its id may be new)."""
        ...
