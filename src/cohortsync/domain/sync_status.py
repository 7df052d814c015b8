"""The statuses of a sync and of its runs, and the moves allowed between them (R-SYN-7).

Every status change in the engine and the services goes through :func:`check_move`, so a
run can never go from ``failed`` back to ``running`` or a stopped sync be ``finished``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from cohortsync.domain.errors import CohortsyncError


class SyncMode(StrEnum):
    """How a cohort is exported: once, or kept in step with the cohort."""

    ONE_TIME = "one_time"
    DYNAMIC = "dynamic"


class SyncStatus(StrEnum):
    """Where a sync stands."""

    ACTIVE = "active"
    FINISHED = "finished"  # a one-time export that succeeded
    STOPPED = "stopped"


class RunStatus(StrEnum):
    """Where one run of a sync stands."""

    PLANNING = "planning"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # done, but the partner refused some members (retried next run)
    FAILED = "failed"
    BLOCKED = "blocked"  # waits for an admin's confirm (R-SYN-8)
    SUPERSEDED = "superseded"  # a blocked run replaced by a newer one, or by a stop

    @property
    def unfinished(self) -> bool:
        """A worker may still carry it on (it holds a plan, or is making one)."""
        return self in UNFINISHED

    @property
    def done(self) -> bool:
        """It sent what it planned (some members may have been refused)."""
        return self in (RunStatus.SUCCEEDED, RunStatus.PARTIAL)


class RunTrigger(StrEnum):
    """What started a run."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    RECONCILE = "reconcile"  # run now, reading the partner's list back first (R-X-2)


UNFINISHED = (RunStatus.PLANNING, RunStatus.RUNNING)
ENDED = (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED)

SYNC_MOVES: dict[SyncStatus, frozenset[SyncStatus]] = {
    # a re-export makes any sync active again (same list, same acknowledged members)
    SyncStatus.ACTIVE: frozenset(SyncStatus),
    SyncStatus.FINISHED: frozenset({SyncStatus.ACTIVE, SyncStatus.STOPPED}),
    SyncStatus.STOPPED: frozenset({SyncStatus.ACTIVE, SyncStatus.STOPPED}),
}

RUN_MOVES: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PLANNING: frozenset(
        {RunStatus.PLANNING, RunStatus.RUNNING, RunStatus.BLOCKED, *ENDED}
    ),
    # back to planning when the partner's list was gone and the plan no longer stands
    RunStatus.RUNNING: frozenset({RunStatus.PLANNING, RunStatus.RUNNING, *ENDED}),
    # an admin's confirm (with a plan: running; without one: planning again), or replaced
    RunStatus.BLOCKED: frozenset({RunStatus.PLANNING, RunStatus.RUNNING, RunStatus.SUPERSEDED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.PARTIAL: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.SUPERSEDED: frozenset(),
}


class IllegalMove(CohortsyncError):
    """A status change the tables above do not allow (a defect, never the user's doing)."""

    code = "illegal_status_change"


S = TypeVar("S", SyncStatus, RunStatus)


def check_move(current: S, new: S) -> S:
    """``new`` when a sync or run in ``current`` may move to it, else IllegalMove."""
    allowed: frozenset[SyncStatus] | frozenset[RunStatus] = (
        SYNC_MOVES[current] if isinstance(current, SyncStatus) else RUN_MOVES[current]
    )
    if new not in allowed:
        raise IllegalMove(f"a {type(current).__name__} cannot go from {current} to {new}")
    return new


def sync_sources(new: SyncStatus) -> tuple[SyncStatus, ...]:
    """The statuses a sync may move to ``new`` from."""
    return tuple(s for s in SyncStatus if new in SYNC_MOVES[s])


def run_sources(new: RunStatus) -> tuple[RunStatus, ...]:
    """The statuses a run may move to ``new`` from."""
    return tuple(s for s in RunStatus if new in RUN_MOVES[s])
