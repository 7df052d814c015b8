"""Crash test (R-SYN-4): a 100,000-member sync killed with SIGKILL at 10 random points.

Each time the worker (``cohortsync syncs run`` in a child process) is killed, a new one takes
over once the lease expires and resumes the run from its last checkpoint. In the end the list
is exact, and the partner received at most one batch again per kill.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import pytest

from cohortsync.sandbox.fleet import RunningSandbox
from tests.conftest import TEST_KEY
from tests.sync.world import SyncWorld

MEMBERS = 100_000
KILLS = 10
BATCH = 1_000  # the webhook protocol's batch


def _worker(database_url: str, sync_id: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "COHORTSYNC_DATABASE_URL": database_url,
        "COHORTSYNC_SECRET_KEY": TEST_KEY,
        "COHORTSYNC_ALLOW_CUSTOM_ENDPOINTS": "1",
        "COHORTSYNC_ALLOW_PRIVATE_ENDPOINTS": "1",
        "COHORTSYNC_SYNC_LEASE_SECONDS": "1",
        "COHORTSYNC_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cohortsync",
            "syncs",
            "run",
            str(sync_id),
            "--wait-for-lease",
            "60",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_killed_workers_resume_and_the_list_ends_exact(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox], database_url: str
) -> None:
    sandbox = sandboxes["webhook"]
    world.users(MEMBERS, plan="pro")
    cohort_id = world.cohort("Pro", {"property": "plan", "op": "equals", "value": "pro"})
    sync = world.service().export(world.project.id, cohort_id, world.connect(sandbox), "dynamic")
    sandbox.state.faults.latency_seconds = 0.03  # a partner 30 ms away: kills land mid-send
    rng = random.Random(20261125)
    kills = 0
    started = time.monotonic()
    while kills < KILLS:
        worker = _worker(database_url, sync.id)
        if kills % 3 == 0:  # anywhere: start-up, waiting for the lease, planning or sending
            time.sleep(rng.uniform(0.5, 3.0))
        else:  # mid-send: once this worker has delivered something, at a random moment
            before = sandbox.state.received
            deadline = time.monotonic() + 60
            while sandbox.state.received == before and worker.poll() is None:
                assert time.monotonic() < deadline, "the worker made no progress"
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.4))
        if worker.poll() is not None:
            output, errors = worker.communicate()
            assert worker.returncode == 0, (output + errors).decode()[-2000:]
            break  # it finished before this kill point
        worker.kill()
        worker.wait()
        kills += 1
    assert kills == KILLS, "the run finished before it was killed enough times"
    final = _worker(database_url, sync.id)
    output, errors = final.communicate(timeout=600)
    assert final.returncode == 0, (output + errors).decode()[-2000:]
    elapsed = time.monotonic() - started

    expected, _ = world.expected("webhook", cohort_id)
    name = world.service().get(world.project.id, sync.id).list_name
    assert name is not None
    held = sandbox.state.members(name)
    assert len(expected) == MEMBERS
    assert held == expected, f"missing {len(expected - held)}, extra {len(held - expected)}"
    assert world.acknowledged(sync.id) == expected
    resent = sandbox.state.received - MEMBERS
    assert 0 <= resent <= kills * BATCH, f"{resent} members re-sent over {kills} kills"
    runs = world.service().runs(world.project.id, sync.id)
    first = runs[-1]  # one run, resumed across the kills (a later one, if any, had no work)
    assert first.status == "succeeded" and first.counts.added == MEMBERS
    assert all(r.status == "succeeded" and r.counts.added == 0 for r in runs[:-1])
    assert resent <= first.counts.resent <= kills * BATCH  # the run says what may repeat
    print(f"{kills} kills, {resent} members re-sent, {elapsed:.1f} s")
