"""Runs asked for now (run now, a confirmed blocked run) on a PostgreSQL install: handed to the
job queue's workers. (SQLite's :class:`~cohortsync.sync.scheduler.SyncScheduler` runs them on
this process's threads; both are a :class:`~cohortsync.sync.ports.RunDispatch`.)"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from sqlalchemy.engine import Engine

from cohortsync.domain.sync_status import RunTrigger
from cohortsync.domain.syncs import SyncRun
from cohortsync.storage.database import read_transaction
from cohortsync.storage.sync_store import SyncStore
from cohortsync.sync import lease
from cohortsync.sync.queue import QueueDefer, SyncQueue
from cohortsync.sync.runner import SyncRunner, worker_name

log = logging.getLogger(__name__)


class QueueDispatch:
    """Runs go to the PostgreSQL job queue. The run is begun here, so the caller hears of it
    (and of a Conflict) at once, then its lease is handed to the job that executes it. With
    ``embedded``, this process also runs a worker (a one-process PostgreSQL install), started
    with the app or at the first run asked for."""

    def __init__(
        self,
        engine: Engine,
        runner: SyncRunner,
        *,
        embedded: SyncQueue | None = None,
        concurrency: int = 4,
    ) -> None:
        self._engine = engine
        self._runner = runner
        self._defer = QueueDefer(engine)
        self._embedded = embedded
        self._concurrency = concurrency
        self._handed: list[int] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task[None] | None = None

    def submit(self, sync_id: int, trigger: RunTrigger) -> SyncRun:
        """Begin the run under a lease of its own, and queue it with that lease."""
        self.start()
        runner = self._runner.as_owner(f"{worker_name()}/api")
        run = runner.begin(sync_id, trigger)
        self._hand_over(run, runner.owner)
        return run

    def resume(self, run: SyncRun) -> None:
        """Queue a confirmed run, whose lease the runner took at the confirm."""
        self.start()
        self._hand_over(run, self._runner.owner)

    def _hand_over(self, run: SyncRun, owner: str) -> None:
        with self._lock:
            self._handed.append(run.id)
        try:
            queued = self._defer.defer(run.sync_id, run.trigger, owner)
        except BaseException:
            lease.release(self._engine, run.sync_id, owner)
            raise
        if not queued:  # a job of the sync waits already: it takes the run once the lease is free
            lease.release(self._engine, run.sync_id, owner)

    def start(self) -> None:
        """Start the embedded worker, if any (once)."""
        with self._lock:
            if self._embedded is None or self._thread is not None:
                return
            self._thread = threading.Thread(target=self._work, name="sync-queue", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        assert self._embedded is not None
        loop = asyncio.new_event_loop()
        worker = loop.create_task(self._embedded.work(self._concurrency, signals=False))
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

    def wait(self, timeout: float | None = None) -> None:
        """Poll until every run handed over has ended (TimeoutError after ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                handed = list(self._handed)
            with read_transaction(self._engine) as connection:
                store = SyncStore(connection)
                if not any(store.get_run(run_id).status.unfinished for run_id in handed):
                    return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("runs handed to the job queue are still going")
            time.sleep(0.1)

    def close(self) -> None:
        """Stop the embedded worker (its runs stop at a checkpoint after the grace period)."""
        with self._lock:
            thread = self._thread
        while thread is not None and thread.is_alive() and self._worker is None:
            time.sleep(0.01)  # the worker's loop is starting
        loop, worker = self._loop, self._worker
        if loop is not None and worker is not None and not loop.is_closed():
            loop.call_soon_threadsafe(worker.cancel)
        if thread is not None:
            thread.join()
        self._defer.close()
