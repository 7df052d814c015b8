"""Who may use the ingestion thread, and when (issue 15, finding 14).

Ingestion is CPU-bound Python: one thread per process decodes and stores (more threads only
fight over the GIL), :class:`~cohortsync.ingest.fair_worker.FairWorker`. A request is decoded
there in a turn keyed by who sent it (the client address; /import's project, whose credentials
name it before the body is read), or, for ``/import?strict=1``, in a helper process
(:attr:`Admission.helpers`, fair turns by project); then the records of each project it carries
are charged to that project's rate limit (``429`` with ``Retry-After`` over it, nothing stored);
then they are stored in a turn keyed by project. A request costs one token a record and one a
KiB of its body (:func:`request_cost`), so a few huge records cost what many small ones do.
Turns go round-robin by key, so a project sending a hundred requests at once waits its turn like
any other, and one with too many waiting to be stored is refused more (``429``) instead of
queueing without end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cohortsync.ingest.fair_turns import FairTurns
from cohortsync.ingest.fair_worker import FairWorker
from cohortsync.ingest.rate_limit import RateLimited, TokenBuckets, retry_after

# A minute at the rate, as Mixpanel measures its limit "on a rolling 1 minute basis".
BURST_SECONDS = 60
KIB = 1024


def request_cost(records: int, size: int) -> int:
    """Tokens a request of ``records`` records in ``size`` bytes (decompressed) costs: one a
    record, at least one a request, and one a whole KiB (Mixpanel limits bytes a minute too)."""
    return max(records, 1) + size // KIB


@dataclass(frozen=True)
class IngestLimits:
    """Records a second and burst per project (rate 0: no limit; burst None: a minute at the
    rate), and requests of one project waiting for the writer (0: no bound)."""

    rate_per_second: float = 0.0
    burst: int | None = None
    waiting_per_project: int = 0


class Admission:
    """The rate limit and the fair turns of one process's ingestion (with ``helpers`` helper
    processes); ``timer`` tells the seconds."""

    def __init__(self, limits: IngestLimits, helpers: int, timer: Callable[[], float]) -> None:
        burst = limits.burst or limits.rate_per_second * BURST_SECONDS
        self._rate = limits.rate_per_second
        self._buckets: TokenBuckets[int] = TokenBuckets(limits.rate_per_second, burst, timer)
        # the ingestion thread: decoding keyed by sender, storing keyed by the projects written
        self.thread = FairWorker(limits.waiting_per_project)
        self.helpers: FairTurns[int] = FairTurns(helpers)  # by project

    def _refuse(self, seconds: float) -> RateLimited:
        wait = retry_after(seconds)
        return RateLimited(
            f"this project sent more than {self._rate:,.0f} records a second, counting a "
            "record a KiB of body (COHORTSYNC_INGEST_RATE_PER_SECOND); nothing was stored, "
            f"retry after {wait} s",
            wait,
        )

    def check(self, project_id: int) -> None:
        """Refuse now, before its body is read, a project whose bucket is empty."""
        seconds = self._buckets.wait(project_id)
        if seconds > 0:
            raise self._refuse(seconds)

    def close(self) -> None:
        """Stop the ingestion thread (after what is queued)."""
        self.thread.close()

    def charge(self, costs: Mapping[int, int]) -> None:
        """Charge each project its cost (:func:`request_cost`), all or none, or refuse."""
        seconds = self._buckets.take({key: max(cost, 1) for key, cost in costs.items()})
        if seconds > 0:
            raise self._refuse(seconds)
