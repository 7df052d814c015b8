"""Three queue workers draining 60 due syncs on PostgreSQL (issue 16): how long it takes, and how
much of the shared partner budget the workers use between them.

Four integrations (Iterable A and B on one Iterable account, CleverTap, webhook) each get 15
dynamic syncs, all due at once; three ``cohortsync worker --concurrency 4`` processes take them
from the job queue. Measured from the emulators' call logs:

- wall time, from the workers' start until every sync's first run has ended;
- the Iterable budget share: requests ÷ (5 a second x the busy seconds), target ≥ 90 %: the
  shared rate must not leave the account idle while senders wait (busy: the time between
  requests less than a second apart; a longer gap is a run waiting for something else, such as
  Iterable's 5 reads of a list a minute);
- the most Iterable requests in any one second (the partner's rule: at most 5);
- CleverTap's mean requests in flight ÷ its cap of 15 (no target: runs send one batch at a time,
  so 15 syncs rarely fill 15 slots).

Needs PostgreSQL: ``COHORTSYNC_BENCH_POSTGRES_URL`` (or ``COHORTSYNC_TEST_POSTGRES_URL``) names a
server where a scratch database may be made; without it the rows say they were skipped.
"""

from __future__ import annotations

import bisect
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from bench.harness import Row, postgres_server, scratch_database
from cohortsync.clock import SystemClock
from cohortsync.keyring import Keyring, generate_key
from cohortsync.sandbox.faults import Call
from cohortsync.sandbox.fleet import RunningSandbox, start_sandbox
from cohortsync.services.cohorts import CohortService
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.integrations import IntegrationService
from cohortsync.services.projects import ProjectService
from cohortsync.services.syncs import SyncService
from cohortsync.storage.database import create_engine
from cohortsync.storage.migrate import upgrade
from cohortsync.storage.tables import sync_runs
from cohortsync.sync.runner import SyncRunner

SUITE = "workers"
WORKERS = 3
SYNCS_PER_INTEGRATION = 15
USERS = 3_000
BATCH = 100  # members per call: a run of a 3,000-member cohort makes 30 calls
ITERABLE_RATE = 5.0
CLEVERTAP_CAP = 15


def _seed(url: str, key: str, sandboxes: dict[str, RunningSandbox]) -> int:
    """Users, five cohorts and 60 dynamic syncs, all due; returns the number of syncs."""
    engine = create_engine(url)
    upgrade(engine)
    clock = SystemClock()
    project, _ = ProjectService(engine, clock).ensure_default()
    ingestion = IngestionService(engine, clock)
    for start in range(0, USERS, 1000):
        ingestion.engage(
            [
                {
                    "$token": project.token,
                    "$distinct_id": f"u{i:05d}",
                    "$set": {"$email": f"u{i:05d}@x.io", "bucket": i % SYNCS_PER_INTEGRATION},
                }
                for i in range(start, min(start + 1000, USERS))
            ]
        )
    integrations = IntegrationService(
        engine,
        Keyring([key]),
        clock,
        allow_custom_endpoints=True,
        allow_private_endpoints=True,
    )
    syncs = SyncService(engine, integrations, clock, SyncRunner(engine, integrations, clock))
    targets = []
    for name, partner in (("A", "iterable"), ("B", "iterable"), ("", "clevertap"), ("", "webhook")):
        body = sandboxes[partner].integration()
        settings = {**body["settings"]}
        made = integrations.connect(
            project.id, body["type"], body["credentials"], settings, name=f"{partner} {name}"
        )
        targets.append(made.id)
    cohorts = CohortService(engine, clock)
    count = 0
    for k in range(SYNCS_PER_INTEGRATION):
        cohort = cohorts.create(
            project.id,
            f"Bucket {k} and up",
            {"property": "bucket", "op": "gte", "value": k},
        )
        for integration_id in targets:
            syncs.export(project.id, cohort.id, integration_id, "dynamic")
            count += 1
    engine.dispose()
    return count


def _settled(url: str, expected: int) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            ended = connection.execute(
                sa.select(sa.func.count(sa.distinct(sync_runs.c.sync_id))).where(
                    sync_runs.c.status.in_(("succeeded", "partial", "failed"))
                )
            ).scalar()
        return ended == expected
    finally:
        engine.dispose()


def _budget_share(calls: list[Call]) -> float:
    """Requests ÷ (rate x busy seconds), busy being the time between consecutive requests
    less than a second apart: a longer gap means no sender was waiting for the request rate
    (a run waiting for a read of the list, at 5 a minute, or planning)."""
    arrivals = sorted(call.start for call in calls)
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    busy = [gap for gap in gaps if gap <= 1.0]
    return len(busy) / (ITERABLE_RATE * sum(busy)) if busy else 0.0


def _mean_in_flight(calls: list[Call]) -> float:
    if not calls:
        return 0.0
    busy = max(c.end for c in calls) - min(c.start for c in calls)
    return sum(c.end - c.start for c in calls) / busy if busy else 0.0


def _most_in_a_second(arrivals: list[float]) -> int:
    ordered = sorted(arrivals)
    return max((bisect.bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered)), default=0)


def run(progress: Callable[[str], None] = print) -> list[Row]:
    """The worker rows of the benchmark table."""
    server = postgres_server()
    if server is None:
        progress("workers: skipped (set COHORTSYNC_BENCH_POSTGRES_URL to a PostgreSQL server)")
        return [Row(SUITE, "skipped: no PostgreSQL (COHORTSYNC_BENCH_POSTGRES_URL)", 0, "")]
    sandboxes = {p: start_sandbox(p) for p in ("iterable", "clevertap", "webhook")}
    key = generate_key()
    try:
        with scratch_database(server) as url, tempfile.TemporaryDirectory() as logs:
            progress("workers: seeding users, cohorts and 60 syncs")
            expected = _seed(url, key, sandboxes)
            for sandbox in sandboxes.values():
                sandbox.state.calls.clear()
            env = {
                **os.environ,
                "COHORTSYNC_DATABASE_URL": url,
                "COHORTSYNC_SECRET_KEY": key,
                "COHORTSYNC_ALLOW_CUSTOM_ENDPOINTS": "1",
                "COHORTSYNC_ALLOW_PRIVATE_ENDPOINTS": "1",
                "COHORTSYNC_SCHEDULER_POLL_SECONDS": "1",
                "COHORTSYNC_SYNC_BATCH_SIZE": str(BATCH),
                "COHORTSYNC_LOG_LEVEL": "WARNING",
            }
            progress(f"workers: {WORKERS} workers draining {expected} due syncs")
            started = time.monotonic()
            workers = [
                subprocess.Popen(
                    [sys.executable, "-m", "cohortsync", "worker", "--concurrency", "4"],
                    env=env,
                    stdout=(Path(logs) / f"worker-{n}.log").open("wb"),
                    stderr=subprocess.STDOUT,
                )
                for n in range(WORKERS)
            ]
            try:
                while not _settled(url, expected):
                    if any(w.poll() is not None for w in workers):
                        raise RuntimeError("a worker exited: see its log")
                    time.sleep(0.5)
                wall = time.monotonic() - started
            finally:
                for worker in workers:
                    worker.send_signal(signal.SIGTERM)
                for worker in workers:
                    worker.wait(timeout=60)
    finally:
        for sandbox in sandboxes.values():
            sandbox.server.stop()
    share = _budget_share(sandboxes["iterable"].state.calls)
    most = _most_in_a_second([call.start for call in sandboxes["iterable"].state.calls])
    in_flight = _mean_in_flight(sandboxes["clevertap"].state.calls) / CLEVERTAP_CAP
    return [
        Row(SUITE, f"{WORKERS} workers drain {expected} due syncs", wall, "s"),
        Row(
            SUITE,
            "shared Iterable budget used (requests / (5/s x busy time))",
            share * 100,
            "%",
            "≥ 90 %",
            share >= 0.9,
        ),
        Row(SUITE, "most Iterable requests in any second", most, "", "≤ 5", most <= 5),
        Row(SUITE, "CleverTap mean requests in flight ÷ cap of 15", in_flight * 100, "%"),
    ]
