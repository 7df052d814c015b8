"""Why a run stops before its end, other than failing: an admin stopped the sync, or the
worker is shutting down. Either way what was acknowledged stays acknowledged."""

from __future__ import annotations

from cohortsync.domain.errors import CohortsyncError


class SyncStopped(CohortsyncError):
    """An admin stopped the sync while it ran."""

    code = "sync_stopped"


class RunPaused(CohortsyncError):
    """The worker is shutting down: the run stops at a checkpoint, unfinished, for another
    worker to resume."""

    code = "run_paused"


def never() -> bool:
    """A worker that is not shutting down: runs go to their end."""
    return False
