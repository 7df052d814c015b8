"""The ingestion thread: one thread per process runs every ingestion job (decoding a body, storing
its records), taken from queues kept by key (the project written to, the client that sent it)
and served round-robin, so a key with a hundred jobs waiting gets one run, then every other
waiting key gets one, before its second. A client sending many requests at once can no longer
hold the others back (a FIFO queue ran them all first); with ``max_waiting_per_key``, a key that
:meth:`FairWorker.check` finds with that many jobs waiting is refused more (``429``).

The thread takes the next job itself as soon as one ends: it never waits for the event loop
between two jobs. Callers await a job's result from the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, TypeVar

from cohortsync.ingest.rate_limit import RateLimited

T = TypeVar("T")
BUSY_RETRY_SECONDS = 1
IDLE_SECONDS = 30.0  # the thread ends after this long without a job

_Job = tuple[Callable[[], Any], "Future[Any]"]


class FairWorker:
    """One thread running jobs round-robin by key."""

    def __init__(self, max_waiting_per_key: int = 0, name: str = "ingestion") -> None:
        self._max_waiting = max_waiting_per_key
        self._name = name
        # keys with jobs waiting, in the order they are served next (a served key goes last)
        self._queues: OrderedDict[Hashable, deque[_Job]] = OrderedDict()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def waiting(self) -> int:
        """How many jobs are waiting to run."""
        with self._ready:
            return sum(len(queue) for queue in self._queues.values())

    def check(self, key: Hashable) -> None:
        """Refuse (RateLimited) when ``key`` already has ``max_waiting_per_key`` jobs waiting."""
        with self._ready:
            queue = self._queues.get(key)
            waiting = len(queue) if queue is not None else 0
        if self._max_waiting and waiting >= self._max_waiting:
            raise RateLimited(
                f"{waiting} requests of this project are already waiting to be stored; "
                "send fewer at once",
                BUSY_RETRY_SECONDS,
            )

    def submit(self, key: Hashable, job: Callable[[], T]) -> Future[T]:
        """Queue ``job`` under ``key``; the future holds its result. A job whose future is
        cancelled before its turn does not run."""
        future: Future[T] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the ingestion worker is closed")
            self._queues.setdefault(key, deque()).append((job, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()
            self._ready.notify()
        return future

    async def run(self, key: Hashable, job: Callable[[], T]) -> T:
        """Run ``job`` in ``key``'s turn and await its result (cancelling the wait withdraws a
        job that has not started)."""
        return await asyncio.wrap_future(self.submit(key, job))

    def _next(self) -> _Job | None:
        with self._ready:
            while not self._queues and not self._closed:
                if not self._ready.wait(IDLE_SECONDS) and not self._queues:
                    self._thread = None  # idle: the next submit starts another
                    return None
            if not self._queues:
                return None
            key, queue = self._queues.popitem(last=False)
            job = queue.popleft()
            if queue:
                self._queues[key] = queue  # back of the line: every other key goes first
            return job

    def _serve(self) -> None:
        while (taken := self._next()) is not None:
            job, future = taken
            if not future.set_running_or_notify_cancel():
                continue  # the caller went away before its turn
            try:
                future.set_result(job())
            except BaseException as error:  # handed to the caller, who raises it
                future.set_exception(error)

    def close(self) -> None:
        """Run what is queued, then stop the thread."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
