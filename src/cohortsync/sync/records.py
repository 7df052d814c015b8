"""Syncs and their runs as stored: the rows, their API shape, and the reads and writes of them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from cohortsync.clock import as_utc
from cohortsync.domain.errors import NotFound
from cohortsync.services.integrations import CONNECTED
from cohortsync.storage.tables import audit_log, integrations, sync_runs, syncs

ONE_TIME = "one_time"
DYNAMIC = "dynamic"
MODES = (ONE_TIME, DYNAMIC)

# Sync status
ACTIVE = "active"
FINISHED = "finished"  # a one-time export that succeeded
STOPPED = "stopped"

# Run status (R-SYN-7)
PLANNING = "planning"
RUNNING = "running"
SUCCEEDED = "succeeded"
PARTIAL = "partial"  # done, but the partner refused some members (retried next run)
FAILED = "failed"
BLOCKED = "blocked"  # waits for an admin's confirm (R-SYN-8)
SUPERSEDED = "superseded"  # a blocked run replaced by a newer one, or by a stop
UNFINISHED = (PLANNING, RUNNING)

# Run triggers
SCHEDULE = "schedule"
MANUAL = "manual"
RECONCILE = "reconcile"  # run now, reading the partner's list back first (R-X-2)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return as_utc(value)


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
    mode: str
    status: str
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
    status: str
    trigger: str
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


def sync_from_row(row: Any, now: datetime) -> Sync:
    """A :class:`Sync` from its row; ``running`` while a worker holds an unexpired lease."""
    lease_until = _utc(row.lease_until)
    return Sync(
        id=row.id,
        project_id=row.project_id,
        cohort_id=row.cohort_id,
        integration_id=row.integration_id,
        mode=row.mode,
        status=row.status,
        interval_seconds=row.interval_seconds,
        list_id=row.list_id,
        list_name=row.list_name,
        reconciled_at=_utc(row.reconciled_at),
        read_back_at=_utc(row.read_back_at),
        next_run_at=_utc(row.next_run_at),
        running=row.lease_owner is not None and lease_until is not None and lease_until > now,
        created_by=row.created_by,
        created_at=_utc(row.created_at) or now,
        updated_at=_utc(row.updated_at) or now,
    )


def run_from_row(row: Any) -> SyncRun:
    """A :class:`SyncRun` from its row."""
    return SyncRun(
        id=row.id,
        sync_id=row.sync_id,
        status=row.status,
        trigger=row.trigger,
        session_id=row.session_id,
        as_of_ms=row.as_of_ms,
        started_at=_utc(row.started_at) or datetime.now(UTC),
        finished_at=_utc(row.finished_at),
        cursor=row.cursor,
        batches=row.batches,
        counts=RunCounts.from_json(row.counts),
        error=row.error,
        blocked_reason=row.blocked_reason,
        confirmed_by=row.confirmed_by,
        confirmed_at=_utc(row.confirmed_at),
    )


def get_sync(connection: Connection, sync_id: int, now: datetime) -> Sync:
    """One sync, or NotFound."""
    row = connection.execute(sa.select(syncs).where(syncs.c.id == sync_id)).first()
    if row is None:
        raise NotFound(f"sync {sync_id} does not exist")
    return sync_from_row(row, now)


def awaiting_turn() -> ColumnElement[bool]:
    """Active syncs with a next run, an integration that is connected and no blocked run
    waiting for a confirm: the ones the scheduler runs when their time comes."""
    blocked = (
        sa.exists()
        .where(sync_runs.c.sync_id == syncs.c.id, sync_runs.c.status == BLOCKED)
        .correlate(syncs)
    )
    connected = (
        sa.exists()
        .where(integrations.c.id == syncs.c.integration_id, integrations.c.status == CONNECTED)
        .correlate(syncs)
    )
    return sa.and_(syncs.c.status == ACTIVE, syncs.c.next_run_at.is_not(None), connected, ~blocked)


def partner_of(connection: Connection, sync_id: int) -> str:
    """The partner (integration type) a sync exports to."""
    partner = connection.execute(
        sa.select(integrations.c.type)
        .join(syncs, syncs.c.integration_id == integrations.c.id)
        .where(syncs.c.id == sync_id)
    ).scalar_one()
    return str(partner)


def get_run(connection: Connection, run_id: int) -> SyncRun:
    """One run, or NotFound."""
    row = connection.execute(sa.select(sync_runs).where(sync_runs.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"run {run_id} does not exist")
    return run_from_row(row)


def latest_run(connection: Connection, sync_id: int) -> SyncRun | None:
    """The newest run of a sync."""
    row = connection.execute(
        sa.select(sync_runs)
        .where(sync_runs.c.sync_id == sync_id)
        .order_by(sync_runs.c.id.desc())
        .limit(1)
    ).first()
    return run_from_row(row) if row is not None else None


def previous_run(connection: Connection, sync_id: int, run_id: int) -> SyncRun | None:
    """The run of a sync that ended before ``run_id`` (blocked and superseded ones aside)."""
    row = connection.execute(
        sa.select(sync_runs)
        .where(
            sync_runs.c.sync_id == sync_id,
            sync_runs.c.id < run_id,
            sync_runs.c.status.not_in((BLOCKED, SUPERSEDED)),
        )
        .order_by(sync_runs.c.id.desc())
        .limit(1)
    ).first()
    return run_from_row(row) if row is not None else None


def update_run(connection: Connection, run_id: int, **values: Any) -> None:
    """Change a run's stored columns."""
    connection.execute(sync_runs.update().where(sync_runs.c.id == run_id).values(**values))


def started_at(connection: Connection, run_id: int) -> datetime:
    """When a run started (the time its cohort and any read-back are as of)."""
    value = connection.execute(
        sa.select(sync_runs.c.started_at).where(sync_runs.c.id == run_id)
    ).scalar_one()
    return as_utc(value)


def list_runs(connection: Connection, sync_id: int, limit: int = 50) -> list[SyncRun]:
    """A sync's runs, newest first."""
    rows = connection.execute(
        sa.select(sync_runs)
        .where(sync_runs.c.sync_id == sync_id)
        .order_by(sync_runs.c.id.desc())
        .limit(limit)
    )
    return [run_from_row(r) for r in rows]


def supersede_blocked(connection: Connection, sync_id: int, now: datetime) -> None:
    """A blocked run waiting for a confirm is replaced (a new run, a re-export or a stop)."""
    connection.execute(
        sync_runs.update()
        .where(sync_runs.c.sync_id == sync_id, sync_runs.c.status == BLOCKED)
        .values(status=SUPERSEDED, finished_at=now)
    )


def audit(
    connection: Connection,
    *,
    project_id: int,
    user_id: int | None,
    action: str,
    target: str,
    detail: dict[str, Any],
    at: datetime,
) -> None:
    """Record an admin action on syncs in the audit log (who, what, when)."""
    connection.execute(
        audit_log.insert().values(
            project_id=project_id,
            user_id=user_id,
            action=action,
            target=target,
            detail=detail,
            at=at,
        )
    )
