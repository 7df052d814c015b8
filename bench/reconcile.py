"""Read-back reconciliation (R-X-2): a 1 M-member Iterable list that drifted by 1 % (0.5 % of the
members taken off by hand, as many strangers put on) is read back, compared and repaired by one
reconciling run.

The Iterable emulator runs in its own process, seeded with the list as the partner holds it; the
sync's database is the sync suite's cached 1 M-profile database, with the acknowledged state of a
sync whose list is exactly the cohort. The run is timed in a fresh process whose RSS is sampled;
the time it spends waiting on the partner's pacing (5 requests a second, one read every 12 s) is
measured by counting its sleeps and left out of the figure held to the target. The emulator counts
its getUsers calls and their arrival times, so the read budget (5 a minute) is checked as Iterable
would see it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bench.harness import Row
from bench.sync import COHORT, _database, _user, measured_run
from cohortsync.clock import SystemClock, now_ms
from cohortsync.destinations.base import PartnerMember
from cohortsync.domain.sync_status import RunStatus, RunTrigger, SyncMode
from cohortsync.keyring import Keyring, generate_key
from cohortsync.partners.iterable.emulator import IterableSandbox
from cohortsync.sandbox.fleet import start_sandbox
from cohortsync.services.cohorts import CohortService
from cohortsync.services.integrations import IntegrationService
from cohortsync.services.projects import ProjectService
from cohortsync.services.syncs import SyncService
from cohortsync.storage.database import create_engine, read_transaction, write_transaction
from cohortsync.storage.migrate import upgrade
from cohortsync.storage.tables import sync_members, syncs
from cohortsync.sync import planning as planning_module
from cohortsync.sync.diff import encode_fields
from cohortsync.sync.plan import cohort_members
from cohortsync.sync.runner import SyncConfig, SyncRunner

SUITE = "reconcile"
LIST_NAME = "mixpanel_pro users_bench"
DRIFT_EVERY = 200  # one member in 200 taken off by hand (0.5 %), and as many strangers put on
CHUNK = 20_000


def _email(i: int) -> str:
    return f"{_user(i)}@example.com"


def _serve_iterable(users: int, pipe: Pipe) -> None:
    """In a spawned process: the Iterable emulator holding the drifted list; answers questions
    until None."""
    sandbox = start_sandbox("iterable")
    state = sandbox.state
    assert isinstance(state, IterableSandbox)
    target = state.create_list(LIST_NAME)
    held = (_email(i) for i in range(users) if i % DRIFT_EVERY != 0)
    strangers = (f"stranger-{i}@example.com" for i in range(users // DRIFT_EVERY))
    state.edit_by_hand(target.id, add=held)
    state.edit_by_hand(target.id, add=strangers)
    pipe.send((sandbox.integration(), target.id))
    while pipe.recv() is not None:
        with state.lock:
            members = set(state.lists[target.id].members)
            reads = [
                when
                for (_, path), (when, _) in zip(state.requests, state.timeline, strict=True)
                if path == "/api/lists/getUsers"
            ]
        expected = {_email(i) for i in range(users)}
        pipe.send(
            {
                "exact": members == expected,
                "held": len(members),
                "reads": reads,
                "reads_refused": state.reads_refused,
            }
        )
    sandbox.server.stop()


def _acknowledge_everyone(engine: Any, sync_id: int, integrations: IntegrationService) -> None:
    """The state of a sync whose list was exactly the cohort: every member acknowledged with the
    fields the connector would send."""
    sync = engine_sync(engine, sync_id)
    destination = integrations.destination(sync["project_id"], sync["integration_id"])
    rows: list[dict[str, Any]] = []
    with read_transaction(engine) as reading:  # WAL: the writes below go on beside this read
        members = cohort_members(
            reading, sync["project_id"], sync["cohort_id"], now_ms(SystemClock())
        )
        for distinct_id, profile in members:
            member = destination.member(distinct_id, profile)
            assert isinstance(member, PartnerMember)
            rows.append(
                {
                    "sync_id": sync_id,
                    "distinct_id": distinct_id,
                    "member_key": member.key,
                    "fields": encode_fields(member.fields),
                }
            )
            if len(rows) >= CHUNK:
                with write_transaction(engine) as connection:
                    connection.execute(sync_members.insert(), rows)
                rows = []
    if rows:
        with write_transaction(engine) as connection:
            connection.execute(sync_members.insert(), rows)
    destination.close()


def engine_sync(engine: Any, sync_id: int) -> Mapping[str, Any]:
    """The sync's row."""
    with read_transaction(engine) as connection:
        row = connection.execute(sa.select(syncs).where(syncs.c.id == sync_id)).one()
        return dict(row._mapping)


def _prepare(database: str, integration: Mapping[str, Any], list_id: str, pipe: Pipe) -> None:
    """In a spawned process: a dynamic sync of the cohort onto the emulator's list with every
    member acknowledged (its list read back just now, so only the asked-for run reads it)."""
    engine = create_engine(f"sqlite:///{database}")
    upgrade(engine)
    project, _ = ProjectService(engine, SystemClock()).ensure_default()
    clock = SystemClock()
    key = generate_key()
    integrations = IntegrationService(
        engine, Keyring([key]), clock, allow_custom_endpoints=True, allow_private_endpoints=True
    )
    connected = integrations.connect(
        project.id, integration["type"], integration["credentials"], integration["settings"]
    )
    service = SyncService(engine, integrations, clock, SyncRunner(engine, integrations, clock))
    cohort = next(c for c in CohortService(engine, clock).list(project.id) if c.name == COHORT)
    sync = service.export(project.id, cohort.id, connected.id, SyncMode.DYNAMIC)
    with write_transaction(engine) as connection:
        connection.execute(
            syncs.update()
            .where(syncs.c.id == sync.id)
            .values(list_id=list_id, list_name=LIST_NAME, reconciled_at=clock.now())
        )
    _acknowledge_everyone(engine, sync.id, integrations)
    engine.dispose()
    with sqlite3.connect(database) as direct:
        direct.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pipe.send((key, sync.id))


def _timed(name: str, marks: dict[str, float], call: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            marks[name] = marks.get(name, 0.0) + time.perf_counter() - began

    return timed


def _reconcile_worker(database: str, key: str, sync_id: int, pipe: Pipe) -> None:
    """In a fresh spawned process: one reconciling run of the prepared sync, with its phases."""
    engine = create_engine(f"sqlite:///{database}")
    clock = SystemClock()
    integrations = IntegrationService(
        engine, Keyring([key]), clock, allow_custom_endpoints=True, allow_private_endpoints=True
    )
    marks: dict[str, float] = {}

    def source(
        connection: Connection, project_id: int, cohort_id: int, as_of_ms: int
    ) -> Iterator[tuple[str, Mapping[str, Any]]]:
        began = time.perf_counter()
        yield from cohort_members(connection, project_id, cohort_id, as_of_ms)
        marks["plan"] = time.perf_counter() - began

    # Phase marks: the planner's read-back and stranger planning, timed where it calls them.
    for name, phase in (("read_back", "read_back"), ("plan_extras", "extras")):
        setattr(planning_module, name, _timed(phase, marks, getattr(planning_module, name)))
    runner = SyncRunner(engine, integrations, clock, SyncConfig(), source=source)
    pipe.send("ready")
    pipe.recv()
    started = time.perf_counter()
    run = runner.run(sync_id, RunTrigger.RECONCILE)
    ended = time.perf_counter()
    pipe.send(
        {
            "seconds": ended - started,
            "paced_seconds": run.counts.waited_seconds,
            "marks": marks,
            "status": run.status,
            "error": run.error,
            "requests": run.counts.requests,
            "drift": (run.counts.drift_missing, run.counts.drift_extra),
            "sent": run.counts.added + run.counts.removed,
        }
    )
    engine.dispose()


@contextlib.contextmanager
def _iterable(users: int) -> Iterator[tuple[Mapping[str, Any], str, Pipe]]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve_iterable, args=(users, theirs), daemon=True)
    process.start()
    theirs.close()
    try:
        integration, list_id = ours.recv()
        yield integration, list_id, ours
    finally:
        with contextlib.suppress(OSError):
            ours.send(None)
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
            process.join()


def most_reads_in_a_minute(times: list[float]) -> int:
    """The most getUsers calls that arrived within any 60 seconds."""
    return max(
        (sum(1 for t in times if start <= t < start + 60) for start in times),
        default=0,
    )


def run(users: int = 1_000_000, progress: Callable[[str], None] = print) -> list[Row]:
    """The reconciliation rows of the benchmark table."""
    source = _database(users, progress)
    drift = 2 * (users // DRIFT_EVERY)
    progress(f"  reconciling a {users:,}-member Iterable list with {drift:,} members of drift")
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as directory, _iterable(users) as (integration, lid, pipe):
        copy = Path(directory) / "sync.db"
        shutil.copyfile(source, copy)
        ours, theirs = context.Pipe()
        setup = context.Process(target=_prepare, args=(str(copy), integration, lid, theirs))
        setup.start()
        theirs.close()
        key, sync_id = ours.recv()
        setup.join()
        result, rss = measured_run(_reconcile_worker, str(copy), key, sync_id)
        pipe.send("state")
        partner: dict[str, Any] = pipe.recv()
    ok = result["status"] == RunStatus.SUCCEEDED and partner["exact"]
    outcome = "" if ok else f"; NOT DONE: run {result['status']} ({result['error']})"
    working = result["seconds"] - result["paced_seconds"]
    marks = result["marks"]
    most_reads = most_reads_in_a_minute(partner["reads"])
    missing, extra = result["drift"]
    reconciling = working - marks.get("plan", 0.0)
    return [
        Row(
            SUITE,
            f"reconciling a {users:,}-member Iterable list, {missing:,} members missing and "
            f"{extra:,} strangers on it: read back and compared {marks.get('read_back', 0):.1f} s, "
            f"strangers planned {marks.get('extras', 0):.1f} s, repairs sent and the run ended in "
            f"the rest ({result['requests']} requests, {result['sent']:,} members sent; the "
            f"partner's pacing, {result['paced_seconds']:.1f} s, and the cohort's own diff left "
            f"out; list exact afterwards: {partner['exact']})" + outcome,
            reconciling,
            "s",
            "<= 10 s",
            reconciling <= 10 and ok,
        ),
        Row(
            SUITE,
            f"the same run end to end less the partner's pacing, the cohort's diff included "
            f"(streamed and diffed in {marks.get('plan', 0):.1f} s: what every run of a "
            f"{users:,}-member cohort costs on SQLite)",
            working,
            "s",
        ),
        Row(
            SUITE,
            f"the same run: peak RSS of the sync process (growth over its "
            f"{rss.baseline / 2**20:.0f} MB before the run: {(rss.peak - rss.baseline) / 2**20:.0f}"
            " MB; emulator in its own process, not counted)",
            rss.peak / 2**20,
            "MB",
            "<= 300 MB",
            rss.peak / 2**20 <= 300 and ok,
        ),
        Row(
            SUITE,
            f"the same run: getUsers calls in any minute, as the emulator received them "
            f"({len(partner['reads'])} in all, {partner['reads_refused']} refused with a 429)",
            float(most_reads),
            "reads",
            "<= 5 a minute, none refused",
            most_reads <= 5 and partner["reads_refused"] == 0,
        ),
    ]
