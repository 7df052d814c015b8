"""Prometheus metrics (R-OBS-1): sync runs, members sent, partner errors, sync lag, data in.

A run is counted once, by the process that ends it. Sync lag is read from the database at scrape
time, so any process reports it for all syncs.

One API process keeps its counters in memory. Several (``serve --workers N``) share them through
prometheus_client's multiprocess mode: each process writes its counters to a file in one
directory (``PROMETHEUS_MULTIPROC_DIR``, which must be set before the library is imported), and
``/metrics``, whichever process answers, adds up every file there. Every metric here is a
Counter, which multiprocess mode sums; a live Gauge would need a ``multiprocess_mode`` and
``mark_process_dead``. A sync worker (``cohortsync worker``) serves its own counters; Prometheus
scrapes each worker and adds them up.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from cohortsync.clock import Clock
from cohortsync.domain.sync_status import RunStatus
from cohortsync.domain.syncs import RunCounts
from cohortsync.storage.database import read_transaction
from cohortsync.storage.sync_store import SyncStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SHARED_DIRECTORY_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The files prometheus_client writes in multiprocess mode: ``counter_<pid>.db``,
# ``gauge_<mode>_<pid>.db``, ... Emptying the directory removes these and nothing else.
_METRIC_FILE = re.compile(r"(?:counter|histogram|summary|gauge_[a-z]+)_\d+\.db")

PROCESS = CollectorRegistry(auto_describe=True)
SYNC_RUNS = Counter(
    "cohortsync_sync_runs",
    "Sync runs that ended, by partner and status (succeeded, partial, failed).",
    ["partner", "status"],
    registry=PROCESS,
)
SYNC_BLOCKED = Counter(
    "cohortsync_sync_blocked_runs",
    "Sync runs held for an admin's confirm (R-SYN-8), by partner; a confirmed one then ends.",
    ["partner"],
    registry=PROCESS,
)
SYNC_MEMBERS = Counter(
    "cohortsync_sync_members",
    "Members the partner acknowledged, by partner and change (added, updated, removed).",
    ["partner", "change"],
    registry=PROCESS,
)
SYNC_REJECTED = Counter(
    "cohortsync_sync_rejected_members",
    "Members the partner refused (recorded, retried on the next run), by partner.",
    ["partner"],
    registry=PROCESS,
)
PARTNER_REQUESTS = Counter(
    "cohortsync_partner_requests",
    "Requests sent to partners by sync runs, by partner and outcome (sent, retried, rate_limited).",
    ["partner", "outcome"],
    registry=PROCESS,
)
PARTNER_ERRORS = Counter(
    "cohortsync_partner_errors",
    "Sync runs that failed, with the partner's or the engine's error, by partner.",
    ["partner"],
    registry=PROCESS,
)
RECORDS_IN = Counter(
    "cohortsync_records_ingested",
    "Events and profile updates stored through the ingestion endpoints, by endpoint.",
    ["endpoint"],
    registry=PROCESS,
)
PARTNER_EVENTS_IN = Counter(
    "cohortsync_partner_events_received",
    "Partner events accepted from webhooks, by $source (a replay is accepted, stored once).",
    ["source"],
    registry=PROCESS,
)


def observe_run(partner: str, status: RunStatus, counts: RunCounts) -> None:
    """Count a run that ended, with what it sent over its whole life (once: by the worker
    whose write ended it)."""
    SYNC_RUNS.labels(partner, status).inc()
    for change, number in (
        ("added", counts.added),
        ("updated", counts.updated),
        ("removed", counts.removed),
    ):
        SYNC_MEMBERS.labels(partner, change).inc(number)
    SYNC_REJECTED.labels(partner).inc(sum(counts.rejected.values()))
    for outcome, number in (
        ("sent", counts.requests),
        ("retried", counts.retries),
        ("rate_limited", counts.rate_limited),
    ):
        PARTNER_REQUESTS.labels(partner, outcome).inc(number)
    if status == RunStatus.FAILED:
        PARTNER_ERRORS.labels(partner).inc()


def observe_blocked(partner: str) -> None:
    """Count a run held for an admin's confirm."""
    SYNC_BLOCKED.labels(partner).inc()


class SyncLag(Collector):
    """``cohortsync_sync_lag_seconds``: per partner, how long the most overdue sync the
    scheduler should run has waited past its next run (0 when none is late). Syncs held on
    purpose (a blocked run, an integration not connected) are left out: they are not late."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "cohortsync_sync_lag_seconds",
            "Seconds the most overdue sync due to run has waited past its next run, by partner.",
            labels=["partner"],
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The gauge's name and help, without reading the database."""
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Read the due times of the syncs awaiting their turn now."""
        lag = self._family()
        now = self._clock.now()
        with read_transaction(self._engine) as connection:
            due = SyncStore(connection).earliest_due_by_partner()
        for partner, when in due:
            lag.add_metric([partner], max((now - when).total_seconds(), 0.0))
        yield lag


def shared_directory() -> str | None:
    """The directory the API processes share their counters in, when there are several."""
    return os.environ.get(SHARED_DIRECTORY_ENV) or None


def empty_shared_directory(directory: Path) -> None:
    """Create ``directory`` or remove the metric files an earlier run left there, before any
    process counts (counters then start from 0 again, which Prometheus reads as a restart)."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.iterdir():
        if _METRIC_FILE.fullmatch(path.name):
            path.unlink(missing_ok=True)


@contextmanager
def shared_across_processes(configured: str, processes: int) -> Iterator[Path | None]:
    """Multiprocess mode for the API processes started inside the block: the operator's
    ``PROMETHEUS_MULTIPROC_DIR`` (emptied), or with several processes ``configured``
    (``metrics_dir``; a new temporary directory when empty, removed afterwards) put in the
    environment they inherit. One process without the variable keeps its counters in memory."""
    operator = shared_directory()
    if operator is not None:
        empty_shared_directory(Path(operator))
        yield Path(operator)
        return
    if processes <= 1:
        yield None
        return
    directory = Path(configured or tempfile.mkdtemp(prefix="cohortsync-metrics-"))
    empty_shared_directory(directory)
    os.environ[SHARED_DIRECTORY_ENV] = str(directory)
    try:
        yield directory
    finally:
        del os.environ[SHARED_DIRECTORY_ENV]
        if not configured:
            shutil.rmtree(directory, ignore_errors=True)


class Metrics:
    """What ``GET /metrics`` shows for one app: the counters (this process's, or every API
    process's in multiprocess mode) and the database's lag."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._counters = PROCESS
        directory = shared_directory()
        if directory is not None:
            # The files of every process, this one's included; PROCESS itself is left out, or
            # this process's counters would show twice.
            self._counters = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._counters, path=directory)  # type: ignore[no-untyped-call]
        # SyncLag reads the database at each scrape, so it has a registry of its own, outside
        # multiprocess mode (which only merges the library's own metric files).
        self._state = CollectorRegistry()
        self._state.register(SyncLag(engine, clock))

    def exposition(self) -> bytes:
        """The Prometheus text format."""
        return generate_latest(self._counters) + generate_latest(self._state)
