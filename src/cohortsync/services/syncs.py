"""Exports and syncs (R-SYN-1, R-SYN-9, R-SYN-10): start, preview, run now, confirm, stop.

Partner calls never run inside a database transaction; runs execute on the scheduler's threads
(SQLite), on the job queue's workers (PostgreSQL), or in the caller's thread (the CLI).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from cohortsync.clock import Clock, now_ms
from cohortsync.destinations import registry
from cohortsync.domain.audit import actor_for
from cohortsync.domain.errors import BatchError, Conflict, NotFound
from cohortsync.domain.integrations import IntegrationStatus
from cohortsync.domain.sync_status import RunTrigger, SyncMode, SyncStatus
from cohortsync.domain.syncs import Sync, SyncRun
from cohortsync.services.integrations import IntegrationService
from cohortsync.settings import Settings
from cohortsync.storage.audit_store import AuditStore
from cohortsync.storage.cohort_store import CohortStore
from cohortsync.storage.database import read_transaction, write_transaction
from cohortsync.storage.sync_store import SyncStore
from cohortsync.sync.diff import Change, DiffTally
from cohortsync.sync.plan import plan_changes
from cohortsync.sync.ports import RunDispatch
from cohortsync.sync.runner import SyncConfig, SyncRunner
from cohortsync.sync.safety import SafetyRules
from cohortsync.sync.scheduler import SyncScheduler

if TYPE_CHECKING:
    from cohortsync.sync.queue import SyncQueue

MIN_INTERVAL_SECONDS = 60


@dataclass(frozen=True)
class Preview:
    """What a run would send now, without sending anything (R-SYN-10, R-X-1)."""

    members: int
    add: int
    update: int
    remove: int
    skip: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        """The API shape (SPEC §11), with identity coverage."""
        matched = self.members - sum(self.skip.values())
        return {
            "members": self.members,
            "add": self.add,
            "update": self.update,
            "remove": self.remove,
            "skip": self.skip,
            "matched": matched,
            "coverage": round(matched / self.members, 4) if self.members else None,
        }


class SyncService:
    """Use cases of syncs over one database, its integrations and where runs execute."""

    def __init__(
        self,
        engine: Engine,
        integrations: IntegrationService,
        clock: Clock,
        runner: SyncRunner,
        dispatch: RunDispatch | None = None,
        *,
        max_dynamic_syncs: int = 60,
    ) -> None:
        self._engine = engine
        self._integrations = integrations
        self._clock = clock
        self.runner = runner
        self.dispatch = dispatch
        self._max_dynamic = max_dynamic_syncs

    def export(
        self,
        project_id: int,
        cohort_id: int,
        integration_id: int,
        mode: str,
        *,
        interval_seconds: int | None = None,
        user_id: int | None = None,
    ) -> Sync:
        """Start exporting a cohort to an integration; a re-export replaces the previous one
        (same list, same acknowledged members, new mode and schedule). The first run is due
        at once."""
        if mode not in tuple(SyncMode):
            raise BatchError(f"mode must be one of: {', '.join(SyncMode)}")
        if interval_seconds is not None and interval_seconds < MIN_INTERVAL_SECONDS:
            raise BatchError(f"interval_seconds must be at least {MIN_INTERVAL_SECONDS}")
        integration = self._integrations.get(project_id, integration_id)
        if integration.status != IntegrationStatus.CONNECTED:
            raise Conflict(
                f"integration {integration_id} is {integration.status}; "
                "connect it (or fix its credentials) before exporting to it"
            )
        spec = registry.partner(integration.type)
        interval = interval_seconds or int(spec.capabilities.interval.total_seconds())
        now = self._clock.now()
        with write_transaction(self._engine) as connection:
            CohortStore(connection).get(project_id, cohort_id)
            store = SyncStore(connection)
            existing = store.find(cohort_id, integration_id)
            if mode == SyncMode.DYNAMIC:
                others = store.count_active_dynamic(project_id, (cohort_id, integration_id))
                if others >= self._max_dynamic:
                    raise Conflict(
                        f"the project already has {others} dynamic syncs, the most allowed "
                        f"({self._max_dynamic}); stop one first"
                    )
            values: dict[str, Any] = {
                "mode": mode,
                "interval_seconds": interval,
                "next_run_at": now,
                "updated_at": now,
            }
            if existing is not None:
                sync_id = existing
                store.move(sync_id, SyncStatus.ACTIVE, values)
                store.supersede_blocked(sync_id, now)
            else:
                sync_id = store.insert(
                    {
                        "project_id": project_id,
                        "cohort_id": cohort_id,
                        "integration_id": integration_id,
                        "status": SyncStatus.ACTIVE,
                        "created_by": user_id,
                        "created_at": now,
                        **values,
                    }
                )
            AuditStore(connection).record(
                project_id=project_id,
                user_id=user_id,
                action="sync.export",
                target=f"sync:{sync_id}",
                detail={
                    "mode": mode,
                    "cohort_id": cohort_id,
                    "integration_id": integration_id,
                    "interval_seconds": interval,
                },
                at=now,
                actor=actor_for(user_id),
            )
        return self.get(project_id, sync_id)

    def preview(self, project_id: int, cohort_id: int, integration_id: int) -> Preview:
        """Adds, updates, removes and skips by reason a run would make now; nothing is sent."""
        with read_transaction(self._engine) as connection:
            CohortStore(connection).get(project_id, cohort_id)
            sync_id = SyncStore(connection).find(cohort_id, integration_id)
        destination = self._integrations.destination(project_id, integration_id)
        ops: Counter[str] = Counter()

        def count(change: Change) -> None:
            ops[change.op] += 1

        try:
            tally: DiffTally = plan_changes(
                self._engine,
                sync_id=sync_id if sync_id is not None else -1,
                project_id=project_id,
                cohort_id=cohort_id,
                as_of_ms=now_ms(self._clock),
                destination=destination,
                sink=count,
                max_members=self.runner.config.max_members,
            )
        finally:
            destination.close()
        return Preview(
            members=tally.members,
            add=ops["add"],
            update=ops["update"],
            remove=ops["remove"],
            skip=dict(tally.skipped),
        )

    def all(self, project_id: int) -> list[Sync]:
        """The project's syncs, oldest first."""
        with read_transaction(self._engine) as connection:
            return SyncStore(connection).for_project(project_id, self._clock.now())

    def get(self, project_id: int, sync_id: int) -> Sync:
        """One sync of the project, or NotFound."""
        with read_transaction(self._engine) as connection:
            sync = SyncStore(connection).get(sync_id, self._clock.now())
        if sync.project_id != project_id:
            raise NotFound(f"sync {sync_id} does not exist in project {project_id}")
        return sync

    def runs(self, project_id: int, sync_id: int, limit: int = 50) -> list[SyncRun]:
        """The sync's run history, newest first."""
        self.get(project_id, sync_id)
        with read_transaction(self._engine) as connection:
            return SyncStore(connection).runs(sync_id, limit)

    def rejections(self, project_id: int, sync_id: int) -> list[dict[str, Any]]:
        """Members the partner refused, waiting to be tried again on the next run."""
        self.get(project_id, sync_id)
        with read_transaction(self._engine) as connection:
            return SyncStore(connection).rejections(sync_id)

    def run_now(
        self,
        project_id: int,
        sync_id: int,
        *,
        wait: bool = False,
        reconcile: bool = False,
        user_id: int | None = None,
    ) -> SyncRun:
        """Start a run at once: in the background when there is a dispatch, else (or with
        ``wait``) in this thread until it ends. With ``reconcile`` the run first reads the
        partner's list back and repairs drift, where the partner can be read (R-X-2). The
        request is audited once the run has begun (a refused one is not)."""
        sync = self.get(project_id, sync_id)
        if sync.status != SyncStatus.ACTIVE:
            raise Conflict(f"sync {sync_id} is {sync.status}; export the cohort again")
        trigger = RunTrigger.RECONCILE if reconcile else RunTrigger.MANUAL
        requested = self._clock.now()
        if self.dispatch is None or wait:
            run = self.runner.run(sync_id, trigger)
        else:
            run = self.dispatch.submit(sync_id, trigger)
        with write_transaction(self._engine) as connection:
            AuditStore(connection).record(
                project_id=project_id,
                user_id=user_id,
                action="sync.run",
                target=f"sync:{sync_id}",
                detail={"run_id": run.id, "trigger": str(trigger)},
                at=requested,
                actor=actor_for(user_id),
            )
        return run

    def confirm(
        self, project_id: int, sync_id: int, user_id: int, *, wait: bool = False
    ) -> SyncRun:
        """An admin lets a blocked run go ahead (audited)."""
        self.get(project_id, sync_id)
        run = self.runner.confirm(sync_id, user_id)
        if self.dispatch is None or wait:
            return self.runner.execute(run)
        self.dispatch.resume(run)
        return run

    def stop(self, project_id: int, sync_id: int, user_id: int | None = None) -> Sync:
        """Stop the sync: no more scheduled runs; a run in progress ends at its next batch."""
        self.get(project_id, sync_id)
        now = self._clock.now()
        with write_transaction(self._engine) as connection:
            store = SyncStore(connection)
            store.move(sync_id, SyncStatus.STOPPED, {"next_run_at": None, "updated_at": now})
            store.supersede_blocked(sync_id, now)
            AuditStore(connection).record(
                project_id=project_id,
                user_id=user_id,
                action="sync.stop",
                target=f"sync:{sync_id}",
                detail={},
                at=now,
                actor=actor_for(user_id),
            )
        return self.get(project_id, sync_id)

    def close(self) -> None:
        """Stop running syncs in the background, letting running runs finish their batch."""
        if self.dispatch is not None:
            self.dispatch.close()


def build_sync_service(
    settings: Settings,
    engine: Engine,
    integrations: IntegrationService,
    clock: Clock,
    *,
    scheduled: bool,
    on_batch: Callable[[SyncRun], None] | None = None,
) -> SyncService:
    """The sync service from settings; ``on_batch`` hears of every acknowledged batch
    (progress bars). With ``scheduled`` this process runs syncs: runs asked for now on its
    threads, due ones found by its scheduler (SQLite) or its queue worker (PostgreSQL). Without,
    runs asked for now go to the job queue (PostgreSQL) or run in the caller's thread."""
    runner = SyncRunner(engine, integrations, clock, sync_config(settings), on_batch=on_batch)
    dispatch: RunDispatch | None = None
    if engine.dialect.name == "postgresql":
        from cohortsync.sync.dispatch import EmbeddedQueue, QueueDispatch  # noqa: PLC0415

        dispatch = (
            EmbeddedQueue(
                _scheduler(settings, engine, runner, clock),
                sync_queue(settings, engine, runner, clock),
                settings.sync_parallel_runs,
            )
            if scheduled
            else QueueDispatch(engine, runner)
        )
    elif scheduled:
        dispatch = _scheduler(settings, engine, runner, clock)
    return SyncService(
        engine, integrations, clock, runner, dispatch, max_dynamic_syncs=settings.sync_max_dynamic
    )


def _scheduler(
    settings: Settings, engine: Engine, runner: SyncRunner, clock: Clock
) -> SyncScheduler:
    return SyncScheduler(
        engine,
        runner,
        clock,
        poll_seconds=settings.scheduler_poll_seconds,
        max_parallel=settings.sync_parallel_runs,
    )


def sync_config(settings: Settings) -> SyncConfig:
    """How runs go, from settings: the lease, the safety rules, the largest cohort."""
    return SyncConfig(
        lease_seconds=settings.sync_lease_seconds,
        safety=SafetyRules(
            removal_share=settings.sync_block_removal_share,
            min_removals=settings.sync_block_min_removals,
        ),
        max_members=settings.sync_max_members,
        batch_size=settings.sync_batch_size,
    )


def sync_queue(settings: Settings, engine: Engine, runner: SyncRunner, clock: Clock) -> SyncQueue:
    """The PostgreSQL job queue, timed from settings."""
    from cohortsync.sync.queue import QueueTiming, SyncQueue  # noqa: PLC0415 (PostgreSQL only)

    timing = QueueTiming(
        poll_seconds=settings.scheduler_poll_seconds,
        heartbeat_seconds=settings.worker_heartbeat_seconds,
        stalled_seconds=settings.worker_stalled_seconds,
        grace_seconds=settings.worker_grace_seconds,
    )
    return SyncQueue(engine, runner, clock, timing)
