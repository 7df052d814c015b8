"""The sync engine: the membership diff of 1 M against 1 M members, members/s of a first sync to
an emulator (without and with a partner rate limit), and the peak memory of a 1 M-member sync.

Each emulator runs in its own (spawned) process, so it shares neither the GIL nor the memory of
the engine; each sync runs in a fresh spawned process whose RSS this one samples. A sync's
database holds N profiles (email, names, ``plan = pro``) made by the real profile ingestion and
a cohort ``plan equals pro`` that selects them all; it is built once into bench/.cache (kept
between runs) and copied for every run, which writes to it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
import tracemalloc
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy.engine import Connection

from bench.harness import Row
from cohortsync.clock import SystemClock
from cohortsync.destinations.base import PartnerMember
from cohortsync.domain.sync_status import RunStatus, SyncMode
from cohortsync.keyring import Keyring, generate_key
from cohortsync.partners.iterable import destination as iterable
from cohortsync.sandbox.fleet import start_sandbox
from cohortsync.services.cohorts import CohortService
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.integrations import IntegrationService
from cohortsync.services.projects import ProjectService
from cohortsync.services.syncs import SyncService
from cohortsync.storage.database import create_engine
from cohortsync.storage.migrate import upgrade
from cohortsync.sync.diff import Acknowledged, DiffTally, encode_fields, member_diff
from cohortsync.sync.plan import cohort_members
from cohortsync.sync.runner import SyncConfig, SyncRunner

SUITE = "sync"
CACHE = Path(__file__).parent / ".cache"
COHORT = "pro users"
DEFINITION = {"property": "plan", "op": "equals", "value": "pro"}
PROFILE_CHUNK = 20_000
# Diff inputs: of every STEP ids one is only in the cohort (an add), one only acknowledged (a
# remove), the rest on both sides; one in CHANGED_EVERY of those has changed fields (an update).
STEP = 21
CHANGED_EVERY = 210
SAMPLE_SECONDS = 0.02
SUBSCRIBE = "/api/lists/subscribe"  # the Iterable emulator's path of one batch of adds


# -- the diff ------------------------------------------------------------------------------------


def _diff_id(i: int) -> str:
    return f"u{i:08d}"


def _member_fields(distinct_id: str, changed: bool) -> dict[str, Any]:
    """The export columns of one member (as acknowledged: an older email when ``changed``)."""
    email = f"{distinct_id}+old@example.com" if changed else f"{distinct_id}@example.com"
    return {"mixpanel_distinct_id": distinct_id, "email": email}


def _current(universe: int) -> Iterator[tuple[str, PartnerMember]]:
    """The cohort as the partner will see it, sorted, generated lazily."""
    for i in range(universe):
        if i % STEP != 1:
            distinct_id = _diff_id(i)
            yield (
                distinct_id,
                PartnerMember(distinct_id, distinct_id, _member_fields(distinct_id, False)),
            )


def _acknowledged(universe: int) -> Iterator[Acknowledged]:
    """The acknowledged side, sorted, its fields as the canonical JSON that was sent."""
    for i in range(universe):
        if i % STEP != 0:
            distinct_id = _diff_id(i)
            email = f"{distinct_id}+old" if i % CHANGED_EVERY == 2 else distinct_id
            fields = f'{{"email":"{email}@example.com","mixpanel_distinct_id":"{distinct_id}"}}'
            yield Acknowledged(distinct_id, distinct_id, fields)


def _consume_diff(universe: int) -> Counter[str]:
    """Run the diff to the end, counting changes by kind (nothing is kept)."""
    changes: Counter[str] = Counter()
    for change in member_diff(_current(universe), _acknowledged(universe), DiffTally()):
        changes[change.op] += 1
    return changes


def _consume_inputs(universe: int) -> None:
    """Only generate both inputs (the baseline subtracted from the diff's time)."""
    deque(_current(universe), maxlen=0)
    deque(_acknowledged(universe), maxlen=0)


def measure_diff(members: int, repeats: int, progress: Callable[[str], None]) -> list[Row]:
    """Time and peak traced memory of ``member_diff`` over ``members`` vs ``members`` members
    with 10 % churn (5 % adds, 5 % removes) and 0.5 % updates."""
    universe = members * STEP // (STEP - 1)
    expected = Counter(
        add=len(range(0, universe, STEP)),
        remove=len(range(1, universe, STEP)),
        update=len(range(2, universe, CHANGED_EVERY)),
    )
    sample = _acknowledged(universe)
    for ack in (next(sample), next(sample)):  # the generated JSON is what encode_fields makes
        changed = int(ack.distinct_id[1:]) % CHANGED_EVERY == 2
        made = encode_fields(_member_fields(ack.distinct_id, changed))
        if ack.fields != made:
            raise RuntimeError(f"the acknowledged side's fields differ: {ack} != {made}")
    progress("  diff: timing")
    gross, inputs, wrong = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        changes = _consume_diff(universe)
        gross.append(time.perf_counter() - started)
        if changes != expected:
            wrong.append(dict(changes))
        started = time.perf_counter()
        _consume_inputs(universe)
        inputs.append(time.perf_counter() - started)
    gross_s, inputs_s = statistics.median(gross), statistics.median(inputs)
    net = gross_s - inputs_s
    progress("  diff: peak memory (tracemalloc)")
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        _consume_diff(universe)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    growth = (peak - before) / 2**20
    sides = f"{universe - expected['remove']:,} vs {universe - expected['add']:,} members"
    return [
        Row(
            SUITE,
            f"diff {sides}, 10 % churn ({expected['add']:,} adds, {expected['remove']:,} "
            f"removes, {expected['update']:,} updates): {gross_s:.2f} s consuming it - "
            f"{inputs_s:.2f} s only generating its inputs (median of {repeats})"
            + (f"; WRONG COUNTS {wrong[0]}" if wrong else ""),
            net,
            "s",
            "<= 2 s",
            net <= 2 and not wrong,
        ),
        Row(
            SUITE,
            f"diff {sides}: peak traced memory growth while consuming it "
            "(tracemalloc; 1 M members held would be > 100 MB)",
            growth,
            "MB",
            "flat (< 10 MB)",
            growth < 10,
        ),
    ]


# -- the profiles ---------------------------------------------------------------------------------


def _user(i: int) -> str:
    return f"user-{i:07d}"


def build_database(path: Path, users: int, progress: Callable[[str], None]) -> None:
    """A SQLite file with ``users`` profiles (all ``plan = pro``, with email and names) through
    the real profile ingestion, and the cohort selecting them."""
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    project, _ = ProjectService(engine, SystemClock()).ensure_default()
    service = IngestionService(engine, SystemClock())
    for first in range(0, users, PROFILE_CHUNK):
        updates = [
            {
                "$token": project.token,
                "$distinct_id": _user(i),
                "$set": {
                    "plan": "pro",
                    "$email": f"{_user(i)}@example.com",
                    "$first_name": "Ada",
                    "$last_name": f"Lovelace {i}",
                },
            }
            for i in range(first, min(first + PROFILE_CHUNK, users))
        ]
        result = service.import_profiles(project, updates)
        if result.failed:
            raise RuntimeError(f"profiles were refused: {result.failed[:3]}")
        progress(f"  building profiles: {min(first + PROFILE_CHUNK, users):,} of {users:,}")
    CohortService(engine, SystemClock()).create(project.id, COHORT, DEFINITION)
    engine.dispose()
    with sqlite3.connect(path) as direct:
        direct.execute("ANALYZE")
        direct.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _database(users: int, progress: Callable[[str], None]) -> Path:
    """The cached database of ``users`` profiles (built on first use)."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"sync-{users}.db"
    done = path.with_suffix(".done")
    if not (path.exists() and done.exists()):
        for stale in CACHE.glob(f"sync-{users}.*"):
            stale.unlink()
        build_database(path, users, progress)
        done.write_text("built\n")
    return path


# -- processes ------------------------------------------------------------------------------------


def _serve_emulator(partner: str, pipe: Pipe) -> None:
    """In a spawned process: run one emulator and answer questions about it until None."""
    sandbox = start_sandbox(partner)
    state = sandbox.state
    pipe.send(sandbox.integration())
    while (question := pipe.recv()) is not None:
        kind, argument = question
        if kind == "members":
            pipe.send(len(state.members(argument)))
        else:  # arrival times (monotonic) of the requests to a path, as the partner saw them
            with state.lock:
                timeline = list(zip(state.requests, state.timeline, strict=True))
            pipe.send([when for (_, path), (when, _) in timeline if path == argument])
    sandbox.server.stop()


@dataclass
class Emulator:
    """An emulator in another process: how to connect to it, and what it received."""

    integration: dict[str, Any]
    pipe: Pipe

    def members(self, list_name: str) -> int:
        """How many members the emulator holds on the list."""
        self.pipe.send(("members", list_name))
        return int(self.pipe.recv())

    def arrivals(self, path: str) -> list[float]:
        """When (monotonic seconds) each request to ``path`` reached the emulator."""
        self.pipe.send(("arrivals", path))
        return list(self.pipe.recv())


@contextlib.contextmanager
def emulator(partner: str) -> Iterator[Emulator]:
    """One partner's emulator in a spawned process, for the duration of the block."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve_emulator, args=(partner, theirs), daemon=True)
    process.start()
    theirs.close()
    try:
        yield Emulator(ours.recv(), ours)
    finally:
        with contextlib.suppress(OSError):
            ours.send(None)
        process.join(timeout=15)
        if process.is_alive():
            process.terminate()
            process.join()


def _sync_worker(database: str, integration: Mapping[str, Any], pipe: Pipe) -> None:
    """In a spawned process: connect the emulator, export the cohort, and on the word run it once
    (``SyncService.run_now``), reporting times and the run's outcome."""
    engine = create_engine(f"sqlite:///{database}")
    upgrade(engine)  # a database cached by an older version gets the newer schema
    project, _ = ProjectService(engine, SystemClock()).ensure_default()
    clock = SystemClock()
    integrations = IntegrationService(
        engine,
        Keyring([generate_key()]),
        clock,
        allow_custom_endpoints=True,
        allow_private_endpoints=True,
    )
    connected = integrations.connect(
        project.id, integration["type"], integration["credentials"], integration["settings"]
    )
    streamed: list[float] = []

    def source(
        connection: Connection, project_id: int, cohort_id: int, as_of_ms: int
    ) -> Iterator[tuple[str, Mapping[str, Any]]]:
        yield from cohort_members(connection, project_id, cohort_id, as_of_ms)
        streamed.append(time.perf_counter())  # the plan's member stream is done

    runner = SyncRunner(engine, integrations, clock, SyncConfig(), source=source)
    service = SyncService(engine, integrations, clock, runner)
    cohort = next(c for c in CohortService(engine, clock).list(project.id) if c.name == COHORT)
    sync = service.export(project.id, cohort.id, connected.id, SyncMode.ONE_TIME)
    pipe.send("ready")
    pipe.recv()
    started = time.perf_counter()
    run = service.run_now(project.id, sync.id, wait=True)
    ended = time.perf_counter()
    pipe.send(
        {
            "seconds": ended - started,
            "streamed_s": (streamed[0] - started) if streamed else None,
            "status": run.status,
            "error": run.error,
            "requests": run.counts.requests,
            "list_name": service.get(project.id, sync.id).list_name,
        }
    )
    engine.dispose()


class PeakRss:
    """Samples one process's RSS in a thread until stopped; keeps the highest."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.baseline = self._process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(SAMPLE_SECONDS)

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()


def measured_run(
    target: Callable[..., None], *args: Any, timeout: float = 120
) -> tuple[dict[str, Any], PeakRss]:
    """Run ``target(*args, pipe)`` in a fresh spawned process, which says "ready", waits for
    "go" and sends its result back; the result, and the process's RSS sampled meanwhile."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    worker = context.Process(target=target, args=(*args, theirs))
    worker.start()
    theirs.close()
    try:
        if ours.recv() != "ready":
            raise RuntimeError("the measured process did not get ready")
        assert worker.pid is not None
        rss = PeakRss(worker.pid)
        ours.send("go")
        result: dict[str, Any] = ours.recv()
        rss.stop()
    finally:
        worker.join(timeout=timeout)
        if worker.is_alive():
            worker.terminate()
    return result, rss


def first_sync(
    partner: str, users: int, progress: Callable[[str], None], *, timed_path: str = ""
) -> dict[str, Any]:
    """One first sync of ``users`` members to ``partner``'s emulator, from a fresh copy of the
    cached database, in a fresh process; its times, outcome, list size, RSS (MB) and when the
    requests to ``timed_path`` reached the emulator."""
    source = _database(users, progress)
    progress(f"  first sync of {users:,} members to the {partner} emulator")
    with tempfile.TemporaryDirectory() as directory, emulator(partner) as partner_side:
        copy = Path(directory) / "sync.db"
        shutil.copyfile(source, copy)
        result, rss = measured_run(_sync_worker, str(copy), partner_side.integration)
        result["on_list"] = partner_side.members(str(result["list_name"]))
        result["arrivals"] = partner_side.arrivals(timed_path) if timed_path else []
    result["rss_baseline_mb"] = rss.baseline / 2**20
    result["rss_peak_mb"] = rss.peak / 2**20
    result["ok"] = result["status"] == RunStatus.SUCCEEDED and result["on_list"] == users
    return result


def _outcome(result: Mapping[str, Any], users: int) -> str:
    if result["ok"]:
        return ""
    return (
        f"; NOT DONE: run {result['status']} ({result['error']}), "
        f"{result['on_list']:,} of {users:,} on the list"
    )


def _phases(result: Mapping[str, Any]) -> str:
    streamed = result["streamed_s"]
    if streamed is None:
        return "the member stream did not finish"
    return f"members streamed and diffed by {streamed:.1f} s of {result['seconds']:.1f} s"


def measure_throughput(partner: str, users: int, progress: Callable[[str], None]) -> Row:
    """Members/s of a first sync without a partner rate limit."""
    result = first_sync(partner, users, progress)
    rate = users / result["seconds"]
    return Row(
        SUITE,
        f"first sync to the {partner} emulator, {users:,} members, end to end (plan + send; "
        f"{_phases(result)}; {result['requests']} requests; emulator in its own process)"
        + _outcome(result, users),
        rate,
        "members/s",
        ">= 20,000",
        rate >= 20_000 and bool(result["ok"]),
    )


def measure_paced(users: int, progress: Callable[[str], None]) -> list[Row]:
    """Requests/s achieved against the Iterable connector's declared 5 requests/s."""
    allowed = iterable.CAPABILITIES.requests_per_second or 0.0
    result = first_sync("iterable", users, progress, timed_path=SUBSCRIBE)
    times = result["arrivals"]
    achieved = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    share = achieved / allowed * 100 if allowed else 0.0
    return [
        Row(
            SUITE,
            f"rate-limited first sync to the Iterable emulator, {users:,} members, "
            f"{len(times)} batches of {iterable.CAPABILITIES.max_batch:,}: requests/s from the "
            f"first to the last batch's arrival at the emulator ({achieved:.2f} of {allowed:g} "
            f"allowed; {result['requests']} requests, {result['seconds']:.1f} s in all)"
            + _outcome(result, users),
            share,
            "%",
            ">= 90 %",
            share >= 90 and bool(result["ok"]),
        )
    ]


def measure_memory(users: int, progress: Callable[[str], None]) -> list[Row]:
    """Peak RSS of the process running a first sync of ``users`` members to Xtremepush."""
    result = first_sync("xtremepush", users, progress)
    peak, baseline = result["rss_peak_mb"], result["rss_baseline_mb"]
    return [
        Row(
            SUITE,
            f"first sync of {users:,} members to the xtremepush emulator: peak RSS of the sync "
            f"process, absolute (growth over its {baseline:.0f} MB before the run: "
            f"{peak - baseline:.0f} MB; emulator in its own process, not counted)"
            + _outcome(result, users),
            peak,
            "MB",
            "<= 300 MB",
            peak <= 300 and bool(result["ok"]),
        ),
        Row(
            SUITE,
            f"the same run's speed ({_phases(result)})",
            users / result["seconds"],
            "members/s",
        ),
    ]


def run(
    members: int = 1_000_000,
    repeats: int = 3,
    throughput_members: int = 100_000,
    paced_members: int = 25_000,
    progress: Callable[[str], None] = print,
) -> list[Row]:
    """The sync rows of the benchmark table."""
    rows = measure_diff(members, repeats, progress)
    for partner in ("webhook", "xtremepush"):
        rows.append(measure_throughput(partner, throughput_members, progress))
    rows += measure_paced(paced_members, progress)
    rows += measure_memory(members, progress)
    return rows
