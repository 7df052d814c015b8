"""Where runs asked for now (run now, a confirmed blocked run) go on a PostgreSQL install:
handed to the job queue's workers (:class:`QueueDispatch`), or, where the API process runs
syncs itself, run on its threads beside a queue worker (:class:`EmbeddedQueue`). SQLite's
:class:`~cohortsync.sync.scheduler.SyncScheduler` is the third
:class:`~cohortsync.sync.ports.RunDispatch`."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from sqlalchemy.engine import Engine

from cohortsync.domain.sync_status import RunTrigger
from cohortsync.domain.syncs import SyncRun
from cohortsync.sync import lease
from cohortsync.sync.queue import QueueDefer, SyncQueue
from cohortsync.sync.runner import SyncRunner, worker_name
from cohortsync.sync.scheduler import SyncScheduler

log = logging.getLogger(__name__)


class QueueDispatch:
    """Runs go to the PostgreSQL job queue (an API process of a production install, whose
    workers run elsewhere). The run is begun here, so the caller hears of it (and of a
    Conflict) at once, then its lease is handed to the job that executes it."""

    def __init__(self, engine: Engine, runner: SyncRunner) -> None:
        self._engine = engine
        self._runner = runner
        self._defer = QueueDefer(engine)

    def submit(self, sync_id: int, trigger: RunTrigger) -> SyncRun:
        """Begin the run under a lease of its own, and queue it with that lease."""
        runner = self._runner.as_owner(f"{worker_name()}/api")
        run = runner.begin(sync_id, trigger)
        self._hand_over(run, runner.owner)
        return run

    def resume(self, run: SyncRun) -> None:
        """Queue a confirmed run, whose lease the runner took at the confirm."""
        self._hand_over(run, self._runner.owner)

    def _hand_over(self, run: SyncRun, owner: str) -> None:
        try:
            queued = self._defer.defer(run.sync_id, run.trigger, owner)
        except BaseException:
            lease.release(self._engine, run.sync_id, owner)
            raise
        if not queued:  # a job of the sync waits already: it takes the run once the lease is free
            lease.release(self._engine, run.sync_id, owner)

    def start(self) -> None:
        """Nothing to start: the workers run elsewhere."""

    def close(self) -> None:
        """Close the connection runs are queued through."""
        self._defer.close()


class EmbeddedQueue:
    """A PostgreSQL install whose API process also runs syncs (``COHORTSYNC_SCHEDULER=1``, the
    default): a queue worker runs in this process from the app's start (due syncs, and jobs
    queued by other processes), and a run asked for here runs on this process's threads."""

    def __init__(self, local: SyncScheduler, queue: SyncQueue, concurrency: int) -> None:
        self._local = local
        self._queue = queue
        self._concurrency = concurrency
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task[None] | None = None

    def submit(self, sync_id: int, trigger: RunTrigger) -> SyncRun:
        """Open a run now and execute it on this process's threads."""
        return self._local.submit(sync_id, trigger)

    def resume(self, run: SyncRun) -> None:
        """Execute a confirmed run on this process's threads."""
        self._local.resume(run)

    def start(self) -> None:
        """Start the queue worker on a thread of its own (once)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._work, name="sync-queue", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        loop = asyncio.new_event_loop()
        worker = loop.create_task(self._queue.work(self._concurrency, signals=False))
        with self._lock:
            self._loop, self._worker = loop, worker
        try:
            loop.run_until_complete(worker)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("the embedded sync worker stopped")
        finally:
            loop.close()

    def close(self) -> None:
        """Stop the queue worker (its runs stop at a checkpoint after the grace period) and
        the runs started here."""
        with self._lock:
            thread = self._thread
        while thread is not None and thread.is_alive() and self._worker is None:
            time.sleep(0.01)  # the worker's loop is starting
        loop, worker = self._loop, self._worker
        if loop is not None and worker is not None and not loop.is_closed():
            loop.call_soon_threadsafe(worker.cancel)
        if thread is not None:
            thread.join()
        self._local.close()
