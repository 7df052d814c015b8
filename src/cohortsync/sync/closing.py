"""Ending a run: its status, counts and error stored, the sync's schedule and reconciliation
mark moved on, its plan and old outcomes dropped, and the metrics told."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine

from cohortsync.clock import Clock
from cohortsync.destinations.base import Destination
from cohortsync.domain.sync_status import RunStatus, SyncMode, SyncStatus
from cohortsync.domain.syncs import RunCounts, Sync
from cohortsync.metrics import observe_run
from cohortsync.storage.database import write_transaction
from cohortsync.storage.ledger_store import LedgerStore
from cohortsync.storage.sync_store import SyncStore
from cohortsync.sync import lease
from cohortsync.sync.outcomes import prune as prune_outcomes
from cohortsync.sync.planning import SyncConfig


@dataclass(frozen=True)
class CallBase:
    """Partner call counts a resumed run had before this worker took it over."""

    requests: int
    retries: int
    rate_limited: int
    waited_seconds: float

    @classmethod
    def of(cls, counts: RunCounts) -> CallBase:
        """What ``counts`` holds so far."""
        return cls(counts.requests, counts.retries, counts.rate_limited, counts.waited_seconds)

    def merge(self, counts: RunCounts, destination: Destination) -> None:
        """This worker's calls added to what the run had before."""
        stats = destination.stats
        counts.requests = self.requests + stats.requests
        counts.retries = self.retries + stats.retries
        counts.rate_limited = self.rate_limited + stats.rate_limited
        counts.waited_seconds = self.waited_seconds + stats.waited_seconds + stats.paced_seconds


def finish_run(
    engine: Engine,
    clock: Clock,
    config: SyncConfig,
    owner: str,
    sync: Sync,
    run_id: int,
    status: RunStatus,
    counts: RunCounts,
    error: str | None,
) -> None:
    """Store how the run ended; a one-time export that is done is finished, one that failed
    is tried again after ``config.one_time_retry_seconds``."""
    now = clock.now()
    with write_transaction(engine) as connection:
        lease.renew(connection, sync.id, owner, now, config.lease_seconds)
        # in the same transaction: a run left unfinished (a worker or a database gone before
        # it committed) keeps its plan, and is resumed from it
        LedgerStore(connection).drop_plan(run_id)
        store = SyncStore(connection)
        store.move_run(run_id, status, finished_at=now, counts=counts.as_json(), error=error)
        values: dict[str, Any] = {"updated_at": now}
        if counts.reconciled and status.done:
            values["reconciled_at"] = store.started_at(run_id)
        if sync.mode == SyncMode.ONE_TIME and status.done:
            values["next_run_at"] = None
            store.move(sync.id, SyncStatus.FINISHED, values, only_from=(SyncStatus.ACTIVE,))
        else:
            if sync.mode == SyncMode.ONE_TIME:
                values["next_run_at"] = now + timedelta(seconds=config.one_time_retry_seconds)
            store.update(sync.id, values, if_active=True)
        prune_outcomes(connection, sync.id)
        partner = store.partner_of(sync.id)
    observe_run(partner, status, counts)
