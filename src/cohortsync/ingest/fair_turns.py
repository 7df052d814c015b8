"""Turns at a shared resource (the helper processes that decode /import bodies) handed out
fairly: at most ``capacity`` holders at once; those waiting queue by key (a project) and the keys
are served round-robin, so a key with a hundred requests waiting gets one turn, then every other
waiting key gets one, before its second (a FIFO queue served them all first).

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

K = TypeVar("K", bound=Hashable)


@dataclass(eq=False)
class _Waiter:
    event: anyio.Event = field(default_factory=anyio.Event)
    granted: bool = False


class FairTurns(Generic[K]):
    """Round-robin turns by key, ``capacity`` at a time."""

    def __init__(self, capacity: int) -> None:
        self._capacity = max(capacity, 1)
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

    async def _acquire(self, key: K) -> None:
        if self._holding < self._capacity and not self._queues:
            self._holding += 1
            return
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
