"""Database faults made real: SQLite's write lock held by another connection, a database that
cannot grow (``PRAGMA max_page_count``: SQLite's own SQLITE_FULL), and PostgreSQL backends
terminated as a server restart terminates them. Nothing is mocked."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from cohortsync.clock import FrozenClock
from cohortsync.domain.accounts import Project
from cohortsync.domain.sync_status import RunStatus
from cohortsync.domain.syncs import SyncRun
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.storage.database import create_engine, normalise_url
from cohortsync.sync.runner import SyncRunner
from cohortsync.sync.scheduler import SyncScheduler
from tests.sync.world import SyncWorld, make_world

# Short enough to keep the tests fast, long enough for a write between two others.
BUSY_TIMEOUT_SECONDS = 0.3
SQLITE_MAX_PAGES = 1_073_741_823  # SQLite's default max_page_count
PLAN_PRO = {"property": "plan", "op": "equals", "value": "pro"}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """The test database, with a SQLite busy timeout of a fraction of a second."""
    engine = create_engine(database_url, busy_timeout_seconds=BUSY_TIMEOUT_SECONDS)
    yield engine
    engine.dispose()


@pytest.fixture
def world(engine: Engine, clock: FrozenClock, project: Project) -> SyncWorld:
    """Users, cohorts and integrations on the sandboxes, over the test database."""
    return make_world(engine, clock, project)


def sqlite_path(engine: Engine) -> str:
    """The file of a SQLite engine."""
    database = engine.url.database
    assert database is not None
    return database


class WriteLock:
    """Another process's writer, as SQLite sees it: a connection of its own that holds the
    database's write lock (``BEGIN IMMEDIATE``) until released."""

    def __init__(self, engine: Engine) -> None:
        self._connection = sqlite3.connect(sqlite_path(engine), isolation_level=None)

    def hold(self) -> None:
        """Take the write lock."""
        self._connection.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        """Give it back (nothing was written)."""
        self._connection.execute("ROLLBACK")

    def close(self) -> None:
        """Close the connection (releasing the lock if held)."""
        self._connection.close()


@pytest.fixture
def write_lock(engine: Engine) -> Iterator[WriteLock]:
    """A second connection to the test's SQLite file that can hold its write lock."""
    lock = WriteLock(engine)
    yield lock
    lock.close()


@dataclass
class DiskQuota:
    """The database may not grow while ``full``: every connection the engine hands out gets
    ``PRAGMA max_page_count`` at the file's current size, so a write that needs a new page fails
    with SQLite's own SQLITE_FULL ("database or disk is full")."""

    full: bool = False

    def attach(self, engine: Engine) -> None:
        """Apply the quota to each connection as the engine checks it out."""

        @event.listens_for(engine, "checkout")
        def _limit(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            cursor = dbapi_connection.cursor()
            pages = cursor.execute("PRAGMA page_count").fetchone()[0]
            cursor.execute(f"PRAGMA max_page_count={pages if self.full else SQLITE_MAX_PAGES}")
            cursor.close()


@pytest.fixture
def disk(engine: Engine) -> DiskQuota:
    """A quota on the test's SQLite database, off until a test fills the disk. The file is
    vacuumed first: no free page is left for a write to reuse once the disk is full."""
    with sqlite3.connect(sqlite_path(engine), isolation_level=None) as connection:
        connection.execute("VACUUM")
    connection.close()
    quota = DiskQuota()
    quota.attach(engine)
    return quota


def integrity(engine: Engine) -> str:
    """``PRAGMA integrity_check`` of the SQLite file, read on a connection of its own."""
    with sqlite3.connect(sqlite_path(engine)) as connection:
        rows = connection.execute("PRAGMA integrity_check").fetchall()
    connection.close()
    return "; ".join(str(row[0]) for row in rows)


@dataclass
class PostgresRestart:
    """What a PostgreSQL restart does to its clients, without restarting the shared server:
    every backend connected to the test's database is terminated (``pg_terminate_backend``)
    from a connection of its own, so each pooled connection finds itself cut."""

    url: str
    terminated: list[int] = field(default_factory=list)

    def __call__(self) -> None:
        """Terminate every other backend of the database now."""
        plain = sa.engine.make_url(normalise_url(self.url)).set(drivername="postgresql")
        with psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True) as c:
            rows = c.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        self.terminated.append(sum(1 for (done,) in rows if done))


def once(action: Callable[[], None], after: int = 1) -> Callable[..., None]:
    """A hook that does ``action`` on its ``after``-th call, and nothing on the others."""
    calls = [0]

    def hook(*_args: object) -> None:
        calls[0] += 1
        if calls[0] == after:
            action()

    return hook


def played(project: Project, prefix: str, count: int, **extra: object) -> bytes:
    """A /track body: ``count`` "Played" events of users user-0 … at the current time, insert
    ids ``prefix``-0 …, each with the ``extra`` properties."""
    now = int(time.time())
    return orjson.dumps(
        [
            {
                "event": "Played",
                "properties": {
                    "token": project.token,
                    "distinct_id": f"user-{i}",
                    "time": now,
                    "$insert_id": f"{prefix}-{i}",
                    **extra,
                },
            }
            for i in range(count)
        ]
    )


def pro_export(world: SyncWorld, sandbox: RunningSandbox, members: int) -> tuple[int, int]:
    """``members`` users on the pro plan and the cohort of them, exported dynamically to
    ``sandbox``: the sync's id and the cohort's."""
    world.users(members, plan="pro")
    cohort_id = world.cohort("Pro", PLAN_PRO)
    sync = world.service().export(world.project.id, cohort_id, world.connect(sandbox), "dynamic")
    return sync.id, cohort_id


def assert_list_is_the_cohort(
    world: SyncWorld,
    sandbox: RunningSandbox,
    sync_id: int,
    cohort_id: int,
    members: int | None = None,
) -> None:
    """The partner's list of the sync holds exactly the cohort (of ``members`` keys, when
    given), and the engine acknowledged exactly that."""
    expected, _ = world.expected(sandbox.partner, cohort_id)
    assert members is None or len(expected) == members
    name = world.service().get(world.project.id, sync_id).list_name
    assert name is not None
    held = sandbox.state.members(name)
    assert held == expected, f"missing {len(expected - held)}, extra {len(held - expected)}"
    assert world.acknowledged(sync_id) == expected


def resume_after_lease(world: SyncWorld, runner: SyncRunner) -> list[int]:
    """What happens next in production: the interrupted run's lease expires and the scheduler
    resumes it; returns the syncs the scheduler started."""
    world.clock.advance(timedelta(seconds=world.config.lease_seconds + 1))
    scheduler = SyncScheduler(world.engine, runner, world.clock, max_parallel=1)
    try:
        started = scheduler.tick()
        scheduler.wait(timeout=60)
    finally:
        scheduler.close()
    return started


def resumed(world: SyncWorld, runner: SyncRunner, stopped: SyncRun) -> SyncRun:
    """The run ``stopped`` left at its checkpoint, once the scheduler has resumed it (after its
    lease) and it succeeded."""
    assert resume_after_lease(world, runner) == [stopped.sync_id]
    [run] = world.service().runs(world.project.id, stopped.sync_id)  # the same run, resumed
    assert run.id == stopped.id and run.status == RunStatus.SUCCEEDED, run.error
    return run
