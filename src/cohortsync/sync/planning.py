"""Planning a run (R-SYN-3, R-SYN-8, R-X-2): read the partner's list back where it is due,
diff the cohort against what the partner holds, store the plan, and block it where the safety
rules say an admin must confirm first."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.engine import Engine

from cohortsync.clock import Clock
from cohortsync.destinations.base import Destination, PartnerList, ReadableDestination
from cohortsync.destinations.errors import DestinationError, TransientError
from cohortsync.destinations.http import RetryPolicy
from cohortsync.domain.errors import CohortsyncError
from cohortsync.domain.sync_status import RunStatus
from cohortsync.domain.syncs import RunCounts, Sync, SyncRun
from cohortsync.metrics import observe_blocked
from cohortsync.storage.database import read_transaction, write_transaction
from cohortsync.storage.sync_store import SyncStore
from cohortsync.sync import lease
from cohortsync.sync.diff import ADD, REMOVE, UPDATE
from cohortsync.sync.ledger import (
    PlanWriter,
    acknowledged_count,
    drop_duplicate_keys,
    drop_plan,
    plan_totals,
)
from cohortsync.sync.outcomes import SkipRecorder
from cohortsync.sync.partner_list import plan_extras, read_back
from cohortsync.sync.plan import DUPLICATE, CohortTooLarge, MemberSource, plan_changes
from cohortsync.sync.safety import SafetyRules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncConfig:
    """The sync engine's knobs (settings ``COHORTSYNC_SYNC_*``)."""

    lease_seconds: float = 60.0
    safety: SafetyRules = field(default_factory=SafetyRules)
    max_members: int = 10_000_000
    one_time_retry_seconds: int = 300
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    batch_size: int | None = None  # smaller batches than the partner allows (None: its limit)
    reconcile_every: timedelta = timedelta(days=1)  # read a readable partner's list back


class EvaluationFailed(CohortsyncError):
    """The cohort could not be evaluated, and there was no list to protect by blocking."""

    code = "evaluation_failed"


class RunPlanner:
    """Plans the runs of one worker (the lease holder ``owner``), over one database."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        config: SyncConfig,
        owner: str,
        source: MemberSource,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._config = config
        self.owner = owner
        self._source = source

    def read_back(
        self,
        sync: Sync,
        destination: ReadableDestination,
        target: PartnerList,
        counts: RunCounts,
    ) -> bool:
        """Read the list back (R-X-2); whether it was read. A read the partner does not answer
        (its read budget, a timeout on a large list) is noted and the run goes on without it:
        the list is read again by the next run, and a refused credential still stops this one."""
        try:
            counts.drift_missing = read_back(
                self._engine, sync.id, destination, target, self._clock.now()
            )
        except TransientError as error:
            log.warning("sync %s: the list could not be read back: %s", sync.id, error.message)
            counts.read_back_error = error.message
            return False
        counts.reconciled = True
        return True

    def replan(self, run: SyncRun, counts: RunCounts) -> SyncRun:
        """Back to planning: the stored plan no longer stands (its list was made again)."""
        drop_plan(self._engine, run.id)
        counts.sending = False  # the new plan starts a fresh list: nothing of it is in flight
        with write_transaction(self._engine) as connection:
            store = SyncStore(connection)
            store.move_run(run.id, RunStatus.PLANNING, cursor=0, batches=0, counts=counts.as_json())
            return store.get_run(run.id)

    def plan(
        self,
        sync: Sync,
        run: SyncRun,
        destination: Destination,
        counts: RunCounts,
        *,
        reconciled: bool = False,
    ) -> bool:
        """Store the run's plan (with the removal of strangers a read-back found); False when
        the run is blocked instead."""
        drop_plan(self._engine, run.id)
        with read_transaction(self._engine) as connection:
            held = acknowledged_count(connection, sync.id)
        writer = PlanWriter(self._engine, run.id)
        skips = SkipRecorder(self._engine, run.id)
        confirmed = run.confirmed_by is not None
        try:
            tally = plan_changes(
                self._engine,
                sync_id=sync.id,
                project_id=sync.project_id,
                cohort_id=sync.cohort_id,
                as_of_ms=run.as_of_ms,
                destination=destination,
                sink=writer.add,
                source=self._source,
                max_members=self._config.max_members,
                on_skip=skips.skip,
            )
            writer.flush()
            skips.flush()
            if reconciled:
                counts.drift_extra = plan_extras(self._engine, sync.id, run.id, writer.add)
                writer.flush()
        except (DestinationError, CohortTooLarge, lease.LeaseLost):
            raise
        except Exception as error:  # the cohort could not be evaluated (gone, query, database)
            log.warning("sync %s: cohort evaluation failed", sync.id, exc_info=True)
            drop_plan(self._engine, run.id)
            message = (
                error.message
                if isinstance(error, CohortsyncError)
                else f"{type(error).__name__}: {str(error)[:300]}"
            )
            reason = None if confirmed else SafetyRules.evaluation_failed(held, message)
            if reason is None:
                raise EvaluationFailed(f"the cohort could not be evaluated: {message}") from None
            self.block(sync.id, run.id, reason)
            return False
        duplicates = drop_duplicate_keys(self._engine, sync.id, run.id)
        for distinct_id, key in duplicates:
            skips.skip(distinct_id, DUPLICATE, key)
        skips.flush()
        with read_transaction(self._engine) as connection:
            totals = plan_totals(connection, run.id)
        counts.members = tally.members
        counts.skipped = tally.skipped
        if duplicates:
            counts.skipped[DUPLICATE] += len(duplicates)
        counts.planned_add = totals.get(ADD, 0)
        counts.planned_update = totals.get(UPDATE, 0)
        counts.planned_remove = totals.get(REMOVE, 0)
        reason = (
            None
            if confirmed
            else self._config.safety.block_reason(
                held=held,
                members=tally.members,
                removes=counts.planned_remove - counts.drift_extra,
                strangers=counts.drift_extra,
            )
        )
        with write_transaction(self._engine) as connection:
            lease.renew(
                connection, sync.id, self.owner, self._clock.now(), self._config.lease_seconds
            )
            store = SyncStore(connection)
            store.move_run(
                run.id,
                RunStatus.BLOCKED if reason else RunStatus.RUNNING,
                blocked_reason=reason,
                counts=counts.as_json(),
            )
            partner = store.partner_of(sync.id)
        if reason is not None:
            observe_blocked(partner)
        return reason is None

    def block(self, sync_id: int, run_id: int, reason: str) -> None:
        """Hold the run for an admin's confirm, with the reason."""
        with write_transaction(self._engine) as connection:
            store = SyncStore(connection)
            store.move_run(run_id, RunStatus.BLOCKED, blocked_reason=reason)
            partner = store.partner_of(sync_id)
        observe_blocked(partner)
