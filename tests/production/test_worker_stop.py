"""A queue worker told to stop (SIGTERM) leaves its run at a checkpoint for another worker, and
exits cleanly; on SQLite the worker is the in-process scheduler and never loads the queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cohortsync.clock import FrozenClock, SystemClock
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.services.projects import ProjectService
from cohortsync.storage.database import create_engine
from cohortsync.storage.tables import sync_runs, syncs
from tests.conftest import TEST_KEY, _truncate_postgres
from tests.sync.world import SyncWorld, make_world

MEMBERS = 400
BATCH = 20


def _worker(database_url: str, log: Path, grace: float) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "COHORTSYNC_DATABASE_URL": database_url,
        "COHORTSYNC_SECRET_KEY": TEST_KEY,
        "COHORTSYNC_ALLOW_CUSTOM_ENDPOINTS": "1",
        "COHORTSYNC_ALLOW_PRIVATE_ENDPOINTS": "1",
        "COHORTSYNC_SCHEDULER_POLL_SECONDS": "1",
        "COHORTSYNC_SYNC_BATCH_SIZE": str(BATCH),
        "COHORTSYNC_WORKER_GRACE_SECONDS": str(grace),
        "COHORTSYNC_LOG_FORMAT": "text",
    }
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "cohortsync", "worker", "--concurrency", "2"],
        env=env,
        stdout=handle,
        stderr=handle,
    )


@pytest.fixture
def pg_world(postgres_database: str) -> Iterator[tuple[SyncWorld, str]]:
    """A sync world on the session's PostgreSQL database, emptied."""
    engine = create_engine(postgres_database)
    _truncate_postgres(engine)
    project, _ = ProjectService(engine, SystemClock()).ensure_default()
    yield make_world(engine, FrozenClock(SystemClock().now()), project), postgres_database
    engine.dispose()


def _run(engine: Engine, sync_id: int) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            sa.select(sync_runs.c.id, sync_runs.c.status, sync_runs.c.batches).where(
                sync_runs.c.sync_id == sync_id
            )
        ).first()


def _lease_owner(engine: Engine, sync_id: int) -> str | None:
    with engine.connect() as connection:
        owner: str | None = connection.execute(
            sa.select(syncs.c.lease_owner).where(syncs.c.id == sync_id)
        ).scalar()
        return owner


@pytest.mark.postgres
def test_sigterm_leaves_the_run_at_a_checkpoint_for_the_next_worker(
    pg_world: tuple[SyncWorld, str], sandboxes: dict[str, RunningSandbox], tmp_path: Path
) -> None:
    world, url = pg_world
    sandbox = sandboxes["webhook"]
    world.users(MEMBERS, plan="pro")
    cohort_id = world.cohort("Pro", {"property": "plan", "op": "equals", "value": "pro"})
    sync = world.service().export(world.project.id, cohort_id, world.connect(sandbox), "dynamic")
    sandbox.state.faults.latency_seconds = 0.2  # 20 batches: a run of several seconds

    first = _worker(url, tmp_path / "first.log", grace=0.3)
    deadline = time.monotonic() + 60
    while (run := _run(world.engine, sync.id)) is None or run.batches < 2:
        assert first.poll() is None, (tmp_path / "first.log").read_text()
        assert time.monotonic() < deadline, (tmp_path / "first.log").read_text()
        time.sleep(0.05)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0, (tmp_path / "first.log").read_text()

    paused = _run(world.engine, sync.id)
    assert paused is not None and paused.status == "running"
    assert 2 <= paused.batches < MEMBERS // BATCH
    assert _lease_owner(world.engine, sync.id) is None  # given back: no wait for it to expire

    second = _worker(url, tmp_path / "second.log", grace=30)
    try:
        deadline = time.monotonic() + 60
        while (run := _run(world.engine, sync.id)) is not None and run.status == "running":
            assert time.monotonic() < deadline, (tmp_path / "second.log").read_text()
            time.sleep(0.1)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
    finished = _run(world.engine, sync.id)
    assert finished is not None and finished.id == paused.id and finished.status == "succeeded"
    expected, _ = world.expected("webhook", cohort_id)
    name = world.service().get(world.project.id, sync.id).list_name
    assert name is not None and sandbox.state.members(name) == expected


def test_the_sqlite_worker_never_loads_the_job_queue(tmp_path: Path) -> None:
    """The embedded default needs nothing of PostgreSQL's: building its sync service (what
    `cohortsync worker` and `serve` do) leaves procrastinate unimported."""
    script = (
        "import sys\n"
        "from cohortsync.app import create_app\n"
        "from cohortsync.settings import Settings\n"
        f"app = create_app(Settings(database_url='sqlite:///{tmp_path}/c.db', "
        f"secret_key='{TEST_KEY}'))\n"
        "assert app.state.cohortsync.syncs.dispatch is not None\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'procrastinate'))\n"
    )
    migrate = subprocess.run(
        [sys.executable, "-m", "cohortsync", "migrate"],
        env={**os.environ, "COHORTSYNC_DATABASE_URL": f"sqlite:///{tmp_path}/c.db"},
        capture_output=True,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr.decode()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode().strip() == "[]"
