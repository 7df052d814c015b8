"""What a person may read of a sync run's errors: admins the partner's own words, members a
generic sentence (a partner's reply may quote whatever its endpoint answered)."""

from __future__ import annotations

from dataclasses import replace

from cohortsync.domain.syncs import SyncRun

# What a member reads instead of a run's error.
MEMBER_RUN_ERROR = "the partner refused this run or could not be reached; an admin can see why"
# What a member reads instead of why the partner's list could not be read back.
MEMBER_READ_BACK_ERROR = "the partner's list could not be read back; an admin can see why"


def shown_run(run: SyncRun, admin: bool) -> SyncRun:
    """The run as a person may see it: for members, the error and the read-back error replaced
    by :data:`MEMBER_RUN_ERROR` and :data:`MEMBER_READ_BACK_ERROR`."""
    if admin:
        return run
    counts = run.counts
    if counts.read_back_error is not None:
        counts = replace(counts, read_back_error=MEMBER_READ_BACK_ERROR)
    error = None if run.error is None else MEMBER_RUN_ERROR
    return replace(run, error=error, counts=counts)
