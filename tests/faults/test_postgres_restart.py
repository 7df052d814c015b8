"""PostgreSQL restarted in the middle of a sync: every connection of the run is cut (as a restart
cuts them), at three moments of a batch. The run either carries on (no transaction was open) or
stops at its last checkpoint and is resumed by the scheduler once its lease expires; in the end
the partner's list is the cohort, nobody was lost, and only a batch in flight went twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event
from starlette.types import ASGIApp, Receive, Scope, Send

from cohortsync.domain.sync_status import RunStatus
from cohortsync.sandbox.faults import CONTROL_PREFIX
from cohortsync.sandbox.fleet import EMULATORS, RunningSandbox
from cohortsync.sandbox.server import start
from tests.faults.conftest import (
    PostgresRestart,
    assert_list_is_the_cohort,
    once,
    pro_export,
    resumed,
)
from tests.sync.world import SyncWorld

pytestmark = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)

MEMBERS = 50
BATCH = 10


class _OnPartnerRequest:
    """ASGI middleware of an emulator: calls ``hook`` as each partner request arrives (the
    control API excepted), before the partner answers it."""

    def __init__(self, app: ASGIApp, hook: Callable[[], None]) -> None:
        self.app, self.hook = app, hook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(CONTROL_PREFIX):
            self.hook()
        await self.app(scope, receive, send)


def _webhook_calling(hook: Callable[[], None]) -> RunningSandbox:
    """A webhook partner emulator of this test's own that calls ``hook`` on each request."""
    emulator = EMULATORS["webhook"]
    state = emulator.state()
    app = emulator.app(state)
    app.add_middleware(_OnPartnerRequest, hook=hook)
    return RunningSandbox("webhook", state, start(app))


def test_a_restart_between_batches_stops_the_run_at_its_checkpoint_and_it_resumes(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox], database_url: str
) -> None:
    """Cut while the runner reads between two batches (a transaction open): the run stops
    where its second checkpoint left it and resumes from there; nothing goes twice."""
    sandbox = sandboxes["webhook"]
    restart = PostgresRestart(database_url)
    sync_id, cohort_id = pro_export(world, sandbox, MEMBERS)
    runner = world.runner(once(restart, after=2), batch_size=BATCH)

    stopped = runner.run(sync_id)

    assert restart.terminated and restart.terminated[0] >= 1
    assert stopped.status == RunStatus.RUNNING  # not failed: left for its resume
    assert stopped.counts.added == 2 * BATCH
    assert resumed(world, runner, stopped).counts.added == MEMBERS
    assert_list_is_the_cohort(world, sandbox, sync_id, cohort_id, MEMBERS)
    assert sandbox.state.received == MEMBERS  # each member sent once


def test_a_restart_during_a_checkpoint_resends_only_the_batch_in_flight(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox], database_url: str
) -> None:
    """Cut as the third batch's acknowledgement is written: that transaction never commits,
    so the resumed run sends that batch again, and the list still holds everyone once."""
    sandbox = sandboxes["webhook"]
    restart = PostgresRestart(database_url)
    sync_id, cohort_id = pro_export(world, sandbox, MEMBERS)
    checkpoints = once(restart, after=3)

    def before_execute(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO SYNC_MEMBERS"):
            checkpoints()

    event.listen(world.engine, "before_cursor_execute", before_execute)
    runner = world.runner(batch_size=BATCH)
    try:
        stopped = runner.run(sync_id)
    finally:
        event.remove(world.engine, "before_cursor_execute", before_execute)

    assert restart.terminated
    assert stopped.status == RunStatus.RUNNING
    assert stopped.counts.added == 2 * BATCH  # the third batch was never acknowledged
    run = resumed(world, runner, stopped)
    assert run.counts.added == MEMBERS and run.counts.resent == BATCH
    assert_list_is_the_cohort(world, sandbox, sync_id, cohort_id, MEMBERS)
    assert sandbox.state.received == MEMBERS + BATCH  # the batch in flight, and nothing else


def test_a_restart_while_the_partner_holds_a_batch_goes_unnoticed(
    world: SyncWorld, database_url: str
) -> None:
    """Cut while a batch is at the partner (no transaction open): the pool's connections are
    replaced as they are next used, and the run finishes in one go."""
    restart = PostgresRestart(database_url)
    sandbox = _webhook_calling(once(restart, after=3))
    try:
        sync_id, cohort_id = pro_export(world, sandbox, MEMBERS)
        run = world.runner(batch_size=BATCH).run(sync_id)
        assert restart.terminated
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert run.counts.added == MEMBERS and run.counts.resent == 0
        assert_list_is_the_cohort(world, sandbox, sync_id, cohort_id, MEMBERS)
        assert sandbox.state.received == MEMBERS
    finally:
        sandbox.server.stop()
