"""The in-process scheduler of the embedded default: which syncs are due, and running them.

``tick()`` does one round and is what tests drive, with a frozen clock; ``start()`` calls it
every few seconds on a thread. Runs execute on a small thread pool; a sync already running
(here or in another process) is skipped, since its lease cannot be taken twice.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from sqlalchemy.engine import Engine

from cohortsync.clock import Clock
from cohortsync.domain.errors import Conflict
from cohortsync.domain.sync_status import RunTrigger
from cohortsync.domain.syncs import SyncRun
from cohortsync.storage.database import read_transaction
from cohortsync.storage.sync_store import SyncStore
from cohortsync.sync.runner import SyncRunner

log = logging.getLogger(__name__)


def due_syncs(engine: Engine, now: datetime) -> list[int]:
    """Syncs to run now: interrupted runs whose worker is gone, then syncs awaiting their turn
    whose time has come."""
    with read_transaction(engine) as connection:
        return SyncStore(connection).due(now)


class SyncScheduler:
    """Starts due runs on a thread pool; one run per sync at a time."""

    def __init__(
        self,
        engine: Engine,
        runner: SyncRunner,
        clock: Clock,
        *,
        poll_seconds: float = 5.0,
        max_parallel: int = 4,
    ) -> None:
        self._engine = engine
        self._runner = runner
        self._clock = clock
        self._poll = poll_seconds
        self._pool = ThreadPoolExecutor(max_parallel, thread_name_prefix="sync-run")
        self._inflight: dict[int, Future[SyncRun]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> list[int]:
        """Start every due sync not already running; returns the ids started."""
        started = []
        for sync_id in due_syncs(self._engine, self._clock.now()):
            try:
                self.submit(sync_id, RunTrigger.SCHEDULE)
            except Conflict:
                continue  # running elsewhere, or no longer runnable
            started.append(sync_id)
        return started

    def submit(self, sync_id: int, trigger: RunTrigger) -> SyncRun:
        """Open a run now and execute it in the background; Conflict if one is in progress."""
        with self._lock:
            running = self._inflight.get(sync_id)
            if running is not None and not running.done():
                raise Conflict(f"sync {sync_id} is already running")
            run = self._runner.begin(sync_id, trigger)
            self._launch(run)
        return run

    def resume(self, run: SyncRun) -> None:
        """Execute a run already begun (a confirmed blocked run) in the background."""
        with self._lock:
            self._launch(run)

    def _launch(self, run: SyncRun) -> None:
        future = self._pool.submit(self._runner.execute, run)
        self._inflight[run.sync_id] = future
        future.add_done_callback(self._log_failure)

    @staticmethod
    def _log_failure(future: Future[SyncRun]) -> None:
        error = future.exception()
        if error is not None:
            log.error("a sync run crashed", exc_info=error)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for every run started so far (tests, shutdown)."""
        with self._lock:
            futures = list(self._inflight.values())
        for future in futures:
            future.result(timeout)

    def start(self) -> None:
        """Tick every ``poll_seconds`` on a background thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="sync-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self.tick()
            except Exception:
                log.exception("scheduler tick failed; trying again next tick")

    def close(self) -> None:
        """Stop ticking and wait for running runs to reach a checkpoint-safe end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._pool.shutdown(wait=True)
