"""A sync (one cohort exported to one integration), its runs and what each run counted."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cohortsync.domain.sync_status import RunStatus, RunTrigger, SyncMode, SyncStatus


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass
class RunCounts:
    """What a run planned and achieved, by reason (R-SYN-7)."""

    members: int = 0
    planned_add: int = 0
    planned_update: int = 0
    planned_remove: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    resent: int = 0  # members that may have reached the partner twice: a restart re-sends
    # the batch that was in flight (at most one batch per restart)
    skipped: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_seconds: float = 0.0  # on the partner's pacing and retry backoff
    list_recreated: bool = False  # the partner's list was gone: made anew and refilled whole
    reconciled: bool = False  # the partner's list was read back and compared (R-X-2)
    read_back_error: str | None = None  # the read-back failed: the run went on without it
    drift_missing: int = 0  # acknowledged members the partner did not hold (sent again)
    drift_extra: int = 0  # members the partner held that it should not (taken off)
    refreshed: bool = False  # the whole membership was sent (a snapshot or a full refresh)
    sending: bool = False  # batches have begun to go out (a restart may repeat the one in flight)

    def as_json(self) -> dict[str, Any]:
        """The stored and reported shape."""
        return {
            "members": self.members,
            "planned": {
                "add": self.planned_add,
                "update": self.planned_update,
                "remove": self.planned_remove,
            },
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "resent": self.resent,
            "skipped": dict(self.skipped),
            "rejected": dict(self.rejected),
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "waited_seconds": round(self.waited_seconds, 3),
            "list_recreated": self.list_recreated,
            "reconciled": self.reconciled,
            "read_back_error": self.read_back_error,
            "drift": {"missing": self.drift_missing, "extra": self.drift_extra},
            "refreshed": self.refreshed,
            "sending": self.sending,
        }

    @classmethod
    def from_json(cls, data: Any) -> RunCounts:
        """Back from the stored shape."""
        data = data or {}
        planned = data.get("planned") or {}
        drift = data.get("drift") or {}
        return cls(
            members=int(data.get("members", 0)),
            planned_add=int(planned.get("add", 0)),
            planned_update=int(planned.get("update", 0)),
            planned_remove=int(planned.get("remove", 0)),
            added=int(data.get("added", 0)),
            updated=int(data.get("updated", 0)),
            removed=int(data.get("removed", 0)),
            resent=int(data.get("resent", 0)),
            skipped=Counter(data.get("skipped") or {}),
            rejected=Counter(data.get("rejected") or {}),
            requests=int(data.get("requests", 0)),
            retries=int(data.get("retries", 0)),
            rate_limited=int(data.get("rate_limited", 0)),
            waited_seconds=float(data.get("waited_seconds", 0.0)),
            list_recreated=bool(data.get("list_recreated", False)),
            reconciled=bool(data.get("reconciled", False)),
            read_back_error=data.get("read_back_error"),
            drift_missing=int(drift.get("missing", 0)),
            drift_extra=int(drift.get("extra", 0)),
            refreshed=bool(data.get("refreshed", False)),
            sending=bool(data.get("sending", False)),
        )


@dataclass(frozen=True)
class Sync:
    """An export of one cohort to one integration."""

    id: int
    project_id: int
    cohort_id: int
    integration_id: int
    mode: SyncMode
    status: SyncStatus
    interval_seconds: int
    list_id: str | None
    list_name: str | None
    reconciled_at: datetime | None  # the list last known to be true (read back, or made empty)
    read_back_at: datetime | None  # when the partner's list was last read (sync_partner_keys)
    next_run_at: datetime | None
    running: bool
    created_by: int | None
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The API shape (SPEC §11)."""
        return {
            "id": self.id,
            "project_id": self.project_id,
            "cohort_id": self.cohort_id,
            "integration_id": self.integration_id,
            "mode": self.mode,
            "status": self.status,
            "interval_seconds": self.interval_seconds,
            "list_id": self.list_id,
            "list_name": self.list_name,
            "reconciled_at": _iso(self.reconciled_at),
            "read_back_at": _iso(self.read_back_at),
            "next_run_at": _iso(self.next_run_at),
            "running": self.running,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class SyncRun:
    """One run of a sync."""

    id: int
    sync_id: int
    status: RunStatus
    trigger: RunTrigger
    session_id: str
    as_of_ms: int
    started_at: datetime
    finished_at: datetime | None
    cursor: int
    batches: int
    counts: RunCounts
    error: str | None
    blocked_reason: str | None
    confirmed_by: int | None
    confirmed_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        """The API shape (SPEC §11)."""
        return {
            "id": self.id,
            "sync_id": self.sync_id,
            "status": self.status,
            "trigger": self.trigger,
            "started_at": self.started_at.isoformat(),
            "finished_at": _iso(self.finished_at),
            "counts": self.counts.as_json(),
            "error": self.error,
            "blocked_reason": self.blocked_reason,
            "confirmed_by": self.confirmed_by,
            "confirmed_at": _iso(self.confirmed_at),
        }
