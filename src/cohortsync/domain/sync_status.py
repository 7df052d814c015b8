"""The statuses of a sync and of its runs, and the moves allowed between them (R-SYN-7).

Every status change goes through a store's move (``domain.status_moves``), so a run can never
go from ``failed`` back to ``running`` or a stopped sync be ``finished``.
"""

from __future__ import annotations

from enum import StrEnum


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
