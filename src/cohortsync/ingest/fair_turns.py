"""Turns at a shared resource (the ingestion writer, the decoders) handed out fairly: at most
``capacity`` holders at once; those waiting queue by key (a project, a client address) and the
keys are served round-robin, so a key with a hundred requests waiting gets one turn, then every
other waiting key gets one, before its second. One client can no longer hold the others back by
sending many requests at once (a FIFO queue served them all first), and with
``max_waiting_per_key`` a key with that many requests waiting is refused more (``429``) rather
than holding their bodies in memory.

The turns belong to one event loop (the server's); they take no lock, since every change is made
on that loop between two awaits.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio

from cohortsync.ingest.rate_limit import RateLimited

K = TypeVar("K", bound=Hashable)
BUSY_RETRY_SECONDS = 1


@dataclass(eq=False)
class _Waiter:
    event: anyio.Event = field(default_factory=anyio.Event)
    granted: bool = False


class FairTurns(Generic[K]):
    """Round-robin turns by key, ``capacity`` at a time."""

    def __init__(self, capacity: int, max_waiting_per_key: int = 0) -> None:
        self._capacity = max(capacity, 1)
        self._max_waiting = max_waiting_per_key
        self._holding = 0
        # keys with someone waiting, in the order they are served next (a served key goes last)
        self._queues: OrderedDict[K, deque[_Waiter]] = OrderedDict()

    @property
    def waiting(self) -> int:
        """How many are waiting for a turn."""
        return sum(len(queue) for queue in self._queues.values())

    @asynccontextmanager
    async def turn(self, key: K) -> AsyncIterator[None]:
        """Wait for ``key``'s turn and hold it for the block."""
        await self._acquire(key)
        try:
            yield
        finally:
            self._release()

    def check(self, key: K) -> None:
        """Refuse (RateLimited) when ``key`` already has ``max_waiting_per_key`` waiting: a
        turn asked for before the next await is then not refused."""
        queue = self._queues.get(key)
        if queue is not None and self._max_waiting and len(queue) >= self._max_waiting:
            raise RateLimited(
                f"{len(queue)} requests of this project are already waiting to be stored; "
                "send fewer at once",
                BUSY_RETRY_SECONDS,
            )

    async def _acquire(self, key: K) -> None:
        if self._holding < self._capacity and not self._queues:
            self._holding += 1
            return
        self.check(key)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        waiter = _Waiter()
        queue.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:  # cancelled (the client went away): give the place up
            if waiter.granted:
                self._release()
            else:
                queue.remove(waiter)
                if not queue and self._queues.get(key) is queue:
                    del self._queues[key]
            raise

    def _release(self) -> None:
        self._holding -= 1
        while self._holding < self._capacity and self._queues:
            key, queue = self._queues.popitem(last=False)
            waiter = queue.popleft()
            if queue:
                self._queues[key] = queue  # back of the line: every other key goes first
            waiter.granted = True
            self._holding += 1
            waiter.event.set()
