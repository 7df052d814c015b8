"""A small in-process cache whose entries expire a fixed number of seconds after they were put."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")
MAX_ENTRIES = 10_000


class TtlCache(Generic[K, V]):
    """A small dict whose entries expire ``seconds`` after they were put; ``timer`` tells the
    seconds (monotonic by default; tests pass their own)."""

    def __init__(self, seconds: float, timer: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._timer = timer
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        """The live value for ``key``, if any."""
        entry = self._entries.get(key)
        if entry is None or entry[0] < self._timer():
            return None
        return entry[1]

    def put(self, key: K, value: V) -> None:
        """Remember ``value`` for ``seconds``."""
        if len(self._entries) > MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (self._timer() + self._seconds, value)

    def discard(self, key: K) -> None:
        """Forget ``key``."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()
