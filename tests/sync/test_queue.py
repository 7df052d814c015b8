"""The PostgreSQL job queue's own rules: the due scan queues a sync once however often it runs;
a job of a worker that went silent goes back to the queue for when its sync's lease ends, or is
closed when the sync is queued already; and each job runs under a lease owner of its own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cohortsync.clock import as_utc
from cohortsync.domain.errors import Conflict
from cohortsync.domain.sync_status import RunTrigger
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.sync import lease
from cohortsync.sync.dispatch import QueueDispatch
from cohortsync.sync.queue import QUEUE, RUN_TASK, QueueTiming, SyncQueue
from tests.helpers import run_async
from tests.sync.world import SyncWorld

pytestmark = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def queue(world: SyncWorld) -> Iterator[SyncQueue]:
    """The job queue over the world's database, on the world's clock."""
    yield SyncQueue(world.engine, world.runner(), world.clock, QueueTiming(stalled_seconds=5))


def _jobs(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.text(
                    "SELECT id, status::text AS status, queueing_lock, lock, scheduled_at, "
                    "args FROM procrastinate_jobs WHERE task_name = :task ORDER BY id"
                ),
                {"task": RUN_TASK},
            )
        )


def _due_sync(world: SyncWorld, sandbox: RunningSandbox) -> int:
    world.users(3, plan="pro")
    cohort_id = world.cohort("Pro", {"property": "plan", "op": "equals", "value": "pro"})
    sync = world.service().export(world.project.id, cohort_id, world.connect(sandbox), "dynamic")
    return sync.id


def _in_queue(queue: SyncQueue, *rounds: str) -> None:
    async def scenario() -> None:
        async with queue.app.open_async():
            for name in rounds:
                await getattr(queue, name)()

    run_async(scenario())


def _stall(engine: Engine, job_id: int) -> None:
    """The job is being run by a worker that stopped beating an hour ago."""
    with engine.begin() as connection:
        worker = connection.execute(
            sa.text(
                "INSERT INTO procrastinate_workers (last_heartbeat) "
                "VALUES (now() - interval '1 hour') RETURNING id"
            )
        ).scalar_one()
        connection.execute(
            sa.text("UPDATE procrastinate_jobs SET status = 'doing', worker_id = :w WHERE id = :j"),
            {"w": worker, "j": job_id},
        )


def test_the_due_scan_queues_each_due_sync_once(
    world: SyncWorld, queue: SyncQueue, sandboxes: dict[str, RunningSandbox]
) -> None:
    sync_id = _due_sync(world, sandboxes["webhook"])
    _in_queue(queue, "enqueue_due", "enqueue_due", "enqueue_due")
    jobs = _jobs(world.engine)
    assert [(j.status, j.queueing_lock, j.lock) for j in jobs] == [
        ("todo", f"sync-{sync_id}", f"sync-{sync_id}")
    ]
    assert jobs[0].args == {"sync_id": sync_id, "trigger": "schedule"}


def test_a_silent_workers_job_is_queued_again_for_when_the_lease_ends(
    world: SyncWorld, queue: SyncQueue, sandboxes: dict[str, RunningSandbox]
) -> None:
    sync_id = _due_sync(world, sandboxes["webhook"])
    _in_queue(queue, "enqueue_due")
    (job,) = _jobs(world.engine)
    _stall(world.engine, job.id)
    lease_end: datetime = world.clock.now() + timedelta(seconds=40)
    assert lease.take(world.engine, sync_id, "the dead worker", world.clock.now(), 40)

    _in_queue(queue, "retry_stalled")
    (retried,) = _jobs(world.engine)
    assert (retried.id, retried.status) == (job.id, "todo")
    assert abs((as_utc(retried.scheduled_at) - lease_end).total_seconds()) < 1


def test_a_silent_workers_job_is_closed_when_the_sync_is_queued_already(
    world: SyncWorld, queue: SyncQueue, sandboxes: dict[str, RunningSandbox]
) -> None:
    _due_sync(world, sandboxes["webhook"])
    _in_queue(queue, "enqueue_due")
    (stalled,) = _jobs(world.engine)
    _stall(world.engine, stalled.id)
    _in_queue(queue, "enqueue_due", "retry_stalled")  # the due scan queues the sync anew
    jobs = {job.id: job.status for job in _jobs(world.engine)}
    assert jobs.pop(stalled.id) == "failed"
    assert list(jobs.values()) == ["todo"]


def test_each_job_runs_under_a_lease_owner_of_its_own(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    """Two threads of one worker share its runner: had they one owner, both could take the
    sync's lease (an owner may take its own lease again)."""
    sync_id = _due_sync(world, sandboxes["webhook"])
    runner = world.runner()
    first = runner.as_owner(f"{runner.owner}/job-1")
    run = first.begin(sync_id, RunTrigger.SCHEDULE)
    with pytest.raises(Conflict, match="already running"):
        runner.as_owner(f"{runner.owner}/job-2").begin(sync_id, RunTrigger.SCHEDULE)
    assert first.begin(sync_id, RunTrigger.SCHEDULE).id == run.id  # the same owner may
    first.execute(run)


def test_run_now_in_an_api_process_hands_the_run_and_its_lease_to_a_worker(
    world: SyncWorld, queue: SyncQueue, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["webhook"]
    sync_id = _due_sync(world, sandbox)
    dispatch = QueueDispatch(world.engine, world.runner())
    try:
        run = dispatch.submit(sync_id, RunTrigger.MANUAL)
        with pytest.raises(Conflict, match="already running"):  # the lease went with the job
            dispatch.submit(sync_id, RunTrigger.MANUAL)
    finally:
        dispatch.close()
    (job,) = _jobs(world.engine)
    with world.engine.connect() as connection:
        owner = connection.execute(
            sa.text("SELECT lease_owner FROM syncs WHERE id = :id"), {"id": sync_id}
        ).scalar()
    assert job.args == {"sync_id": sync_id, "trigger": "manual", "owner": owner}

    async def drain() -> None:
        async with queue.app.open_async():
            await queue.app.run_worker_async(
                queues=[QUEUE], wait=False, install_signal_handlers=False
            )

    run_async(drain())
    done = world.service().runs(world.project.id, sync_id)[0]
    assert (done.id, done.status) == (run.id, "succeeded")
    expected, _ = world.expected(
        "webhook", world.service().get(world.project.id, sync_id).cohort_id
    )
    name = world.service().get(world.project.id, sync_id).list_name
    assert name is not None and sandbox.state.members(name) == expected
