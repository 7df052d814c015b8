"""The sync job queue of a PostgreSQL install (procrastinate): any number of ``cohortsync worker``
processes, on any machines, share the due syncs.

Three tasks, on the queue ``syncs``:

- ``run_sync(sync_id, trigger)`` carries one run: the sync's unfinished run if it has one (it
  resumes at its checkpoint), else a new one. Each job runs under a lease owner of its own. A
  job holds the queueing lock *and* the lock ``sync-<id>``: the queue never keeps two of a
  sync waiting, nor runs two at once; the sync's lease stays the guard on every other path.
- ``enqueue_due_syncs`` (periodic, every poll): each sync due now gets a ``run_sync`` job.
- ``retry_stalled_syncs`` (periodic): a job whose worker stopped beating is put back in the
  queue for when its sync's lease ends, so another worker resumes the run; if the due scan
  queued the sync already, the stalled job is closed as failed instead.

A worker told to stop (SIGTERM) lets its runs go on for the grace period, then asks each to
stop at its next checkpoint: the run stays unfinished with its lease given back, and the next
due scan hands it to another worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from procrastinate import App, JobContext, PsycopgConnector, SyncPsycopgConnector, exceptions
from procrastinate.jobs import JobDeferrer, Status
from sqlalchemy.engine import Engine

from cohortsync.clock import Clock
from cohortsync.domain.errors import Conflict
from cohortsync.domain.sync_status import RunTrigger
from cohortsync.storage.database import read_transaction
from cohortsync.storage.sync_store import SyncStore
from cohortsync.sync.runner import SyncRunner, worker_name
from cohortsync.sync.scheduler import due_syncs

log = logging.getLogger(__name__)

QUEUE = "syncs"
RUN_TASK = "cohortsync.run_sync"
DUE_TASK = "cohortsync.enqueue_due_syncs"
STALLED_TASK = "cohortsync.retry_stalled_syncs"
# A run asked for by a person goes before the scheduled ones waiting.
MANUAL_PRIORITY = 10


@dataclass(frozen=True)
class QueueTiming:
    """How often the due scan runs, and how a worker's death is told from its silence."""

    poll_seconds: float = 5.0
    heartbeat_seconds: float = 10.0
    stalled_seconds: float = 30.0
    grace_seconds: float = 30.0

    def cron(self) -> str:
        """The periodic tasks' schedule: every ``poll_seconds`` (whole seconds, 1 to 59)."""
        return f"*/{min(max(round(self.poll_seconds), 1), 59)} * * * * *"


def conninfo(engine: Engine) -> str:
    """The libpq connection string of the state database, for the queue's own connections."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def run_job(app: App, sync_id: int, priority: int) -> JobDeferrer:
    """A ``run_sync`` job of the sync, locked by the sync: at most one waiting, one running."""
    lock = f"sync-{sync_id}"
    return app.configure_task(
        RUN_TASK, queueing_lock=lock, lock=lock, priority=priority, queue=QUEUE
    )


class SyncQueue:
    """The job queue of one PostgreSQL database: defers sync runs and runs a worker."""

    def __init__(
        self, engine: Engine, runner: SyncRunner, clock: Clock, timing: QueueTiming
    ) -> None:
        self._engine = engine
        self._runner = runner
        self._clock = clock
        self.timing = timing
        self.app = App(connector=PsycopgConnector(conninfo=conninfo(engine)))
        self._register()

    # -- the tasks ------------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app

        @app.task(name=RUN_TASK, queue=QUEUE, pass_context=True)
        def run_sync(context: JobContext, sync_id: int, trigger: str, owner: str = "") -> None:
            self._run(context, sync_id, RunTrigger(trigger), owner)

        @app.periodic(cron=self.timing.cron())
        @app.task(name=DUE_TASK, queue=QUEUE, queueing_lock=DUE_TASK)
        async def enqueue_due_syncs(timestamp: int) -> None:
            await self.enqueue_due()

        @app.periodic(cron=self.timing.cron())
        @app.task(name=STALLED_TASK, queue=QUEUE, queueing_lock=STALLED_TASK)
        async def retry_stalled_syncs(timestamp: int) -> None:
            await self.retry_stalled()

    def _run(self, context: JobContext, sync_id: int, trigger: RunTrigger, owner: str) -> None:
        job = context.job
        # A run begun elsewhere (an API process) hands its lease to this job through ``owner``.
        runner = self._runner.as_owner(owner or f"{worker_name()}/job-{job.id}")
        try:
            run = runner.begin(sync_id, trigger)
        except Conflict as refused:  # its lease is held, or the sync was stopped meanwhile
            log.info("sync %s: job %s not run: %s", sync_id, job.id, refused.message)
            return
        finished = runner.execute(run, should_stop=context.should_abort)
        if finished.status.unfinished:
            log.info("sync %s: run %s left for another worker to resume", sync_id, run.id)

    async def enqueue_due(self) -> None:
        """One round of the due scan: a ``run_sync`` job for each sync due now."""
        due = await asyncio.to_thread(due_syncs, self._engine, self._clock.now())
        for sync_id in due:
            await self.defer_async(sync_id, RunTrigger.SCHEDULE)

    async def retry_stalled(self) -> None:
        """One round of the stalled scan: jobs of silent workers back to the queue for when
        their sync's lease ends (closed as failed where the sync is queued already)."""
        manager = self.app.job_manager
        stalled = await manager.get_stalled_jobs(
            task_name=RUN_TASK, seconds_since_heartbeat=self.timing.stalled_seconds
        )
        for job in stalled:
            sync_id = int(str(job.task_kwargs["sync_id"]))
            retry_at = await asyncio.to_thread(self._lease_end, sync_id)
            try:
                await manager.retry_job(job, retry_at=retry_at)
            except exceptions.UniqueViolation:  # the due scan queued the sync already
                assert job.id is not None
                await manager.finish_job_by_id_async(job.id, Status.FAILED, delete_job=False)
                continue
            log.warning(
                "sync %s: job %s's worker went silent; another worker resumes its run at %s",
                sync_id,
                job.id,
                retry_at.isoformat(),
            )

    def _lease_end(self, sync_id: int) -> datetime:
        now = self._clock.now()
        with read_transaction(self._engine) as connection:
            until = SyncStore(connection).lease_until(sync_id)
        return max(until, now) if until is not None else now

    # -- deferring ------------------------------------------------------------------------

    async def defer_async(self, sync_id: int, trigger: RunTrigger, priority: int = 0) -> bool:
        """Queue a run of the sync; False when one is queued already (it will do)."""
        try:
            await run_job(self.app, sync_id, priority).defer_async(
                sync_id=sync_id, trigger=str(trigger)
            )
        except exceptions.AlreadyEnqueued:
            return False
        return True

    # -- the worker -----------------------------------------------------------------------

    def worker_options(self, concurrency: int, *, signals: bool) -> dict[str, Any]:
        """procrastinate's worker options for ``concurrency`` runs at once."""
        return {
            "queues": [QUEUE],
            "concurrency": concurrency,
            "name": worker_name(),
            "shutdown_graceful_timeout": self.timing.grace_seconds,
            "delete_jobs": "successful",
            "update_heartbeat_interval": self.timing.heartbeat_seconds,
            "stalled_worker_timeout": self.timing.stalled_seconds,
            "install_signal_handlers": signals,
            "fetch_job_polling_interval": self.timing.poll_seconds,
        }

    async def work(self, concurrency: int, *, signals: bool = True) -> None:
        """Run jobs until told to stop (SIGINT/SIGTERM with ``signals``, or cancelled)."""
        async with self.app.open_async():
            await self.app.run_worker_async(**self.worker_options(concurrency, signals=signals))


class QueueDefer:
    """Defers sync runs from a process that runs no worker (an API process), over a
    synchronous connection of its own."""

    def __init__(self, engine: Engine) -> None:
        self._conninfo = conninfo(engine)
        self._app: App | None = None
        self._opening = threading.Lock()

    def _opened(self) -> App:
        with self._opening:
            if self._app is None:  # at the first run asked for: most commands never defer
                self._app = App(connector=SyncPsycopgConnector(conninfo=self._conninfo)).open()
            return self._app

    def defer(self, sync_id: int, trigger: RunTrigger, owner: str) -> bool:
        """Queue a run of the sync begun under the lease of ``owner``, handing that lease to
        the job; False when a job of the sync is queued already (it will do)."""
        job = run_job(self._opened(), sync_id, MANUAL_PRIORITY)
        try:
            job.defer(sync_id=sync_id, trigger=str(trigger), owner=owner)
        except exceptions.AlreadyEnqueued:
            return False
        return True

    def close(self) -> None:
        """Close its connections."""
        with self._opening:
            if self._app is not None:
                self._app.close()
                self._app = None
