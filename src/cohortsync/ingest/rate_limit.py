"""A per-project ingestion rate limit (issue 15, finding 14): a token bucket per project, filled
at a steady rate of records a second up to a burst, each request taking one token a record and
one a KiB of its body (:func:`cohortsync.ingest.admission.request_cost`).

Mixpanel limits ingestion per project, "2GB of uncompressed JSON/minute or ~30k events per
second, measured on a rolling 1 minute basis" (docs.mixpanel.com/reference/rate-limits), and
answers ``429`` when it is passed: the defaults (COHORTSYNC_INGEST_RATE_PER_SECOND and _BURST)
follow it, a burst of one minute at the rate. Each process keeps its own buckets, so with several
workers a project may send that many times the rate.

Time is read from the service's clock, so tests drive the buckets without waiting.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Generic, TypeVar

from cohortsync.domain.errors import TooManyRequests

K = TypeVar("K", bound=Hashable)
_MAX_KEYS = 10_000  # above this many buckets, full ones (no different from absent) are dropped


class RateLimited(TooManyRequests):
    """Too many records, or requests, from one project now: ``429`` with ``Retry-After``."""

    code = "rate_limited"


def retry_after(seconds: float) -> int:
    """Whole seconds to wait (``Retry-After`` is in whole seconds), at least one."""
    return max(1, math.ceil(seconds))


class TokenBuckets(Generic[K]):
    """One bucket per key: ``rate`` tokens a second, holding at most ``burst`` (a rate of 0 is
    no limit). ``timer`` tells the seconds (any origin); buckets start full."""

    def __init__(self, rate: float, burst: float, timer: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._timer = timer
        self._buckets: dict[K, tuple[float, float]] = {}  # key -> (tokens, when counted)
        self._lock = threading.Lock()

    @property
    def unlimited(self) -> bool:
        """Whether the buckets limit nothing."""
        return self.rate <= 0

    def _level(self, key: K, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + max(now - at, 0.0) * self.rate)

    def wait(self, key: K, cost: float = 1.0) -> float:
        """Seconds until ``key``'s bucket holds ``cost`` tokens (a cost over the burst needs a
        full bucket); 0 when it does now."""
        if self.unlimited:
            return 0.0
        with self._lock:
            missing = min(cost, self.burst) - self._level(key, self._timer())
        return max(missing, 0.0) / self.rate

    def take(self, costs: Mapping[K, float]) -> float:
        """Take each key's cost from its bucket, all or none: 0 when taken, else the seconds
        until all of them could be (nothing is taken then)."""
        if self.unlimited:
            return 0.0
        with self._lock:
            now = self._timer()
            levels = {key: self._level(key, now) for key in costs}
            missing = max(
                (min(cost, self.burst) - levels[key] for key, cost in costs.items()), default=0.0
            )
            if missing > 0:
                return missing / self.rate
            for key, cost in costs.items():
                self._buckets[key] = (levels[key] - min(cost, self.burst), now)
            if len(self._buckets) > _MAX_KEYS:
                self._forget_full(now)
            return 0.0

    def _forget_full(self, now: float) -> None:
        full = [key for key in self._buckets if self._level(key, now) >= self.burst]
        for key in full:
            del self._buckets[key]
