"""Running a sync (R-SYN-2 … R-SYN-8): plan, check safety, send in checkpointed batches.

A run moves through ``planning`` → ``running`` → ``succeeded`` / ``partial`` / ``failed``, or
stops at ``blocked`` until an admin confirms. Its plan is stored, so a worker that dies mid-run
leaves a run that the next worker (after the lease expires) resumes from its cursor.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from sqlalchemy.engine import Engine

from cohortsync.clock import Clock, now_ms
from cohortsync.destinations.base import (
    CohortInfo,
    Destination,
    PartnerList,
    ReadableDestination,
    RunInfo,
    SnapshotDestination,
)
from cohortsync.destinations.errors import PartnerConfigError, TransientError
from cohortsync.destinations.registry import list_name
from cohortsync.destinations.run_tag import tagged
from cohortsync.domain.errors import CohortsyncError, Conflict, DatabaseUnavailable
from cohortsync.domain.integrations import Integration, IntegrationStatus
from cohortsync.domain.sync_status import RunStatus, RunTrigger, SyncMode, SyncStatus
from cohortsync.domain.syncs import RunCounts, Sync, SyncRun
from cohortsync.storage.audit_store import AuditStore
from cohortsync.storage.cohort_store import CohortStore
from cohortsync.storage.database import read_transaction, write_transaction
from cohortsync.storage.sync_store import SyncStore
from cohortsync.sync import lease
from cohortsync.sync.closing import CallBase, finish_run
from cohortsync.sync.delivery import deliver, next_batch
from cohortsync.sync.interruptions import RunPaused, SyncStopped, never
from cohortsync.sync.ledger import (
    BatchResult,
    acknowledged_count,
    acknowledged_members,
    checkpoint,
    plan_page,
    plan_totals,
)
from cohortsync.sync.partner_list import (
    ListFound,
    drift_suspected,
    find_or_make,
    keep,
    reconcile_due,
)
from cohortsync.sync.plan import MemberSource, cohort_members
from cohortsync.sync.planning import RunPlanner, SyncConfig
from cohortsync.sync.ports import Destinations

__all__ = ["RunPaused", "SyncConfig", "SyncRunner", "SyncStopped", "worker_name"]

log = logging.getLogger(__name__)


def worker_name() -> str:
    """A name for this worker that is unique across machines and restarts."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SyncRunner:
    """Runs syncs of one database, one run per sync at a time (leases), checkpointing each batch."""

    def __init__(
        self,
        engine: Engine,
        destinations: Destinations,
        clock: Clock,
        config: SyncConfig | None = None,
        *,
        owner: str | None = None,
        source: MemberSource = cohort_members,
        on_batch: Callable[[SyncRun], None] | None = None,
    ) -> None:
        self._engine = engine
        self._destinations = destinations
        self._clock = clock
        self.config = config or SyncConfig()
        self.owner = owner or worker_name()
        self._on_batch = on_batch
        self._source = source
        self._planner = RunPlanner(engine, clock, self.config, self.owner, source)

    def as_owner(self, owner: str) -> SyncRunner:
        """The same runner under another lease owner (one per queue job: two threads of one
        process must never both hold a sync's lease)."""
        return SyncRunner(
            self._engine,
            self._destinations,
            self._clock,
            self.config,
            owner=owner,
            source=self._source,
            on_batch=self._on_batch,
        )

    # -- starting -------------------------------------------------------------------------

    def begin(self, sync_id: int, trigger: RunTrigger) -> SyncRun:
        """Take the sync's lease and open a run (or the interrupted one, to resume it).

        Raises Conflict when another run of the sync is in progress. The caller must then call
        :meth:`execute`, which releases the lease.
        """
        return self._begin(sync_id, trigger)[0]

    def _begin(self, sync_id: int, trigger: RunTrigger) -> tuple[SyncRun, bool]:
        """The run to execute, and whether it is an interrupted one being resumed."""
        now = self._clock.now()
        if not lease.take(self._engine, sync_id, self.owner, now, self.config.lease_seconds):
            raise Conflict(f"sync {sync_id} is already running; wait for its run to finish")
        try:
            with write_transaction(self._engine) as connection:
                store = SyncStore(connection)
                sync = store.get(sync_id, now)
                latest = store.latest_run(sync_id)
                if latest is not None and latest.status.unfinished:
                    return latest, True
                if sync.status != SyncStatus.ACTIVE:
                    raise Conflict(f"sync {sync_id} is {sync.status}; export the cohort again")
                store.supersede_blocked(sync_id, now)
                next_run = (
                    now + timedelta(seconds=sync.interval_seconds)
                    if sync.mode != SyncMode.ONE_TIME
                    else None
                )
                store.update(sync_id, {"next_run_at": next_run, "updated_at": now})
                run = store.insert_run(
                    {
                        "sync_id": sync_id,
                        "trigger": trigger,
                        "session_id": uuid.uuid4().hex,
                        "as_of_ms": now_ms(self._clock),
                        "started_at": now,
                        "counts": RunCounts().as_json(),
                    }
                )
                return run, False
        except BaseException:
            lease.release(self._engine, sync_id, self.owner)
            raise

    def confirm(self, sync_id: int, user_id: int) -> SyncRun:
        """An admin lets a blocked run proceed (audited); then call :meth:`execute`."""
        now = self._clock.now()
        if not lease.take(self._engine, sync_id, self.owner, now, self.config.lease_seconds):
            raise Conflict(f"sync {sync_id} is already running")
        try:
            with write_transaction(self._engine) as connection:
                store = SyncStore(connection)
                sync = store.get(sync_id, now)
                run = store.latest_run(sync_id)
                if run is None or run.status != RunStatus.BLOCKED:
                    raise Conflict(f"sync {sync_id} has no blocked run to confirm")
                has_plan = bool(plan_totals(connection, run.id))
                store.move_run(
                    run.id,
                    RunStatus.RUNNING if has_plan else RunStatus.PLANNING,
                    confirmed_by=user_id,
                    confirmed_at=now,
                )
                AuditStore(connection).record(
                    project_id=sync.project_id,
                    user_id=user_id,
                    action="sync.confirm_blocked_run",
                    target=f"sync:{sync_id}/run:{run.id}",
                    detail={"blocked_reason": run.blocked_reason},
                    at=now,
                )
                return store.get_run(run.id)
        except BaseException:
            lease.release(self._engine, sync_id, self.owner)
            raise

    def run(self, sync_id: int, trigger: RunTrigger = RunTrigger.MANUAL) -> SyncRun:
        """Begin and execute a run in this thread. An interrupted run is finished first (its
        plan is partly sent, and re-planning could send it again), then a fresh run brings the
        list up to date with the cohort as it is now."""
        run, resumed = self._begin(sync_id, trigger)
        finished = self.execute(run)
        if not resumed or not finished.status.done:
            return finished
        try:
            fresh, _ = self._begin(sync_id, trigger)
        except Conflict:  # a one-time export the resumed run completed, or another worker
            return finished
        return self.execute(fresh)

    # -- executing ------------------------------------------------------------------------

    def execute(self, run: SyncRun, should_stop: Callable[[], bool] | None = None) -> SyncRun:
        """Carry a begun run as far as it goes, and give the lease back.

        ``should_stop`` is asked before each batch (a worker shutting down): if so the run stops
        there, unfinished, and gives the lease back for another worker to resume it.

        When the database fails mid-run (a restart, a lock held past the busy timeout, a full
        disk), the run stays at its last checkpoint and keeps its lease, as a worker that died
        would: once the lease expires the scheduler resumes it, sending only what was not
        acknowledged.
        """
        sync_id = run.sync_id
        interrupted = False
        try:
            with (
                lease.Heartbeat(
                    self._engine, self._clock, sync_id, self.owner, self.config.lease_seconds
                ),
                tagged(run.session_id),
            ):
                self._execute(run, should_stop or never)
        except RunPaused:
            log.info("sync %s: run %s paused at a checkpoint for another worker", sync_id, run.id)
        except lease.LeaseLost:
            log.warning("sync %s: another worker took over run %s", sync_id, run.id)
        except DatabaseUnavailable as error:
            interrupted = True
            log.warning(
                "sync %s: run %s stopped at its last checkpoint (%s); it resumes when its "
                "lease expires",
                sync_id,
                run.id,
                error.message,
            )
        finally:
            if not interrupted:
                lease.release(self._engine, sync_id, self.owner)
        with read_transaction(self._engine) as connection:
            return SyncStore(connection).get_run(run.id)

    def _execute(self, run: SyncRun, should_stop: Callable[[], bool]) -> None:
        with read_transaction(self._engine) as connection:
            store = SyncStore(connection)
            sync = store.get(run.sync_id, self._clock.now())
            previous = store.previous_run(sync.id, run.id)
        counts = run.counts
        base = CallBase.of(counts)
        destination: Destination | None = None
        try:
            integration = self._destinations.get(sync.project_id, sync.integration_id)
            if integration.status != IntegrationStatus.CONNECTED:
                raise PartnerConfigError(
                    f"the integration {integration.name!r} is {integration.status}"
                    + (f": {integration.error}" if integration.error else "")
                    + "; fix or reconnect it, then run again"
                )
            destination = self._destinations.connector(integration, self.config.retry)
            found = self._target(sync, integration, destination)
            with read_transaction(self._engine) as connection:
                sync = SyncStore(connection).get(sync.id, self._clock.now())
            if found.recreated:
                counts.list_recreated = True
                # the plan was a diff against a list that is gone
                if run.status != RunStatus.PLANNING:
                    run = self._planner.replan(run, counts)
            if run.status == RunStatus.PLANNING:
                reconcile = reconcile_due(
                    sync,
                    destination,
                    run,
                    previous,
                    self._clock.now(),
                    self.config.reconcile_every,
                )
                if reconcile and isinstance(destination, ReadableDestination):
                    reconcile = self._planner.read_back(sync, destination, found.target, counts)
                if not self._planner.plan(sync, run, destination, counts, reconciled=reconcile):
                    return
                with read_transaction(self._engine) as connection:
                    run = SyncStore(connection).get_run(run.id)
            refresh = (
                found.recreated or drift_suspected(previous) or run.trigger == RunTrigger.RECONCILE
            )
            self._send(sync, run, destination, counts, base, found.target, refresh, should_stop)
        except PartnerConfigError as error:
            self._destinations.flag(sync.project_id, sync.integration_id, error.message)
            self._finish(sync, run.id, RunStatus.FAILED, counts, destination, error.message, base)
        except TransientError as error:
            message = (
                f"{error.message} (gave up after the retry budget; the next run carries on "
                "from what was acknowledged)"
            )
            self._finish(sync, run.id, RunStatus.FAILED, counts, destination, message, base)
        except (lease.LeaseLost, DatabaseUnavailable, RunPaused):
            raise  # not the run's fault: it is left where it stands (see execute)
        except CohortsyncError as error:
            self._finish(sync, run.id, RunStatus.FAILED, counts, destination, error.message, base)
        except Exception as error:
            log.exception("sync %s run %s failed", sync.id, run.id)
            self._finish(
                sync,
                run.id,
                RunStatus.FAILED,
                counts,
                destination,
                f"internal error: {error!r}",
                base,
            )
        finally:
            if destination is not None:
                destination.close()

    def _target(self, sync: Sync, integration: Integration, destination: Destination) -> ListFound:
        with read_transaction(self._engine) as connection:
            cohort = CohortStore(connection).get(sync.project_id, sync.cohort_id)
        name = sync.list_name or list_name(integration.settings, cohort.name, cohort.id)
        info = CohortInfo(cohort.id, cohort.name, cohort.description)
        return find_or_make(self._engine, sync, destination, info, name, self._clock.now())

    def _send(
        self,
        sync: Sync,
        run: SyncRun,
        destination: Destination,
        counts: RunCounts,
        base: CallBase,
        target: PartnerList,
        refresh: bool,
        should_stop: Callable[[], bool],
    ) -> None:
        destination.begin_run(
            RunInfo(
                session_id=run.session_id,
                adds=counts.planned_add + counts.planned_update,
                removes=counts.planned_remove,
                batches_done=run.batches,
            )
        )
        # A run that began sending before a restart may have had its first batch in flight even
        # with nothing acknowledged yet (a kill before the first checkpoint).
        resumed = run.batches > 0 or counts.sending
        cursor = run.cursor
        batch_size = min(
            destination.capabilities.max_batch,
            self.config.batch_size or destination.capabilities.max_batch,
        )
        max_body = destination.capabilities.max_body_bytes
        rejected_before = sum(counts.rejected.values())
        while True:
            with read_transaction(self._engine) as connection:
                current = SyncStore(connection).get(sync.id, self._clock.now())
                if current.status == SyncStatus.STOPPED:
                    raise SyncStopped(
                        "the sync was stopped before this run finished; what was sent until "
                        "then is acknowledged"
                    )
                page = plan_page(connection, run.id, cursor, batch_size)
            if not page:
                break
            if should_stop():
                raise RunPaused(f"run {run.id} paused at batch {run.batches}")
            batch = next_batch(page, max_body)
            changes = [change for _, change in batch]
            if resumed or not counts.sending:
                # The batch in flight at the restart may reach the partner twice. Recorded
                # before it is sent again, so a kill during this send cannot lose the count;
                # and a run marks that it has begun sending before its first batch goes out.
                if resumed:
                    counts.resent += len(changes)
                resumed = False
                counts.sending = True
                with write_transaction(self._engine) as connection:
                    lease.renew(
                        connection,
                        sync.id,
                        self.owner,
                        self._clock.now(),
                        self.config.lease_seconds,
                    )
                    SyncStore(connection).update_run(run.id, counts=counts.as_json())
            accepted, rejected = deliver(destination, target, changes)
            base.merge(counts, destination)
            cursor = batch[-1][0]
            with write_transaction(self._engine) as connection:
                lease.renew(
                    connection, sync.id, self.owner, self._clock.now(), self.config.lease_seconds
                )
                checkpoint(
                    connection,
                    sync.id,
                    run.id,
                    BatchResult(changes, accepted, rejected),
                    cursor,
                    counts,
                )
            if self._on_batch is not None:
                with read_transaction(self._engine) as connection:
                    self._on_batch(SyncStore(connection).get_run(run.id))
        if isinstance(destination, SnapshotDestination) and (
            destination.capabilities.snapshot_membership or refresh
        ):
            self._refresh(sync, destination, target, counts, base)
        refused = sum(counts.rejected.values()) > rejected_before
        status = RunStatus.PARTIAL if refused else RunStatus.SUCCEEDED
        self._finish(sync, run.id, status, counts, destination, None, base)

    def _refresh(
        self,
        sync: Sync,
        destination: SnapshotDestination,
        target: PartnerList,
        counts: RunCounts,
        base: CallBase,
    ) -> None:
        """Hand the partner the whole acknowledged membership (a snapshot, or a full refresh
        where drift is suspected), and keep the list it answers with."""
        with read_transaction(self._engine) as connection:
            total = acknowledged_count(connection, sync.id)
        members = (m.member() for m in acknowledged_members(self._engine, sync.id))
        current = destination.replace_members(target, members, total)
        keep(self._engine, replace(sync, list_id=target.id, list_name=target.name), current)
        counts.refreshed = True
        base.merge(counts, destination)

    def _finish(
        self,
        sync: Sync,
        run_id: int,
        status: RunStatus,
        counts: RunCounts,
        destination: Destination | None,
        error: str | None,
        base: CallBase,
    ) -> None:
        if destination is not None:
            base.merge(counts, destination)
        finish_run(
            self._engine,
            self._clock,
            self.config,
            self.owner,
            sync,
            run_id,
            status,
            counts,
            error,
        )
