"""Partner faults during a sync: rate limits, server errors, timeouts, revoked credentials,
per-member refusals and a concurrency cap. In every case nothing is lost: what the partner took
is acknowledged, and the next run makes the list exact."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from cohortsync.domain.syncs import SyncRun
from cohortsync.sandbox.fleet import RunningSandbox
from tests.sync.world import SyncWorld

PLAN_PRO = {"property": "plan", "op": "equals", "value": "pro"}


def _export(world: SyncWorld, sandbox: RunningSandbox, users: int) -> tuple[int, int]:
    world.users(users, plan="pro")
    cohort_id = world.cohort("Pro", PLAN_PRO)
    integration_id = world.connect(sandbox)
    sync = world.service().export(world.project.id, cohort_id, integration_id, "dynamic")
    return sync.id, cohort_id


def _exact(world: SyncWorld, sandbox: RunningSandbox, sync_id: int, cohort_id: int) -> None:
    expected, _ = world.expected(sandbox.partner, cohort_id)
    name = world.service().get(world.project.id, sync_id).list_name
    assert name is not None
    assert sandbox.state.members(name) == expected
    assert world.acknowledged(sync_id) == expected


def _after_first_batch(action: Callable[[], object]) -> Callable[[SyncRun], None]:
    """A batch hook (a seam the runner owns) that runs ``action`` once, after the first
    acknowledged batch."""
    fired = threading.Event()

    def hook(_run: SyncRun) -> None:
        if not fired.is_set():
            fired.set()
            action()

    return hook


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_retry_after_is_honoured_in_real_time(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    """Two 429s with ``Retry-After: 7``: no request comes sooner than 7 s after its 429."""
    sandbox = sandboxes["webhook"]
    sync_id, cohort_id = _export(world, sandbox, 30)
    runner = world.runner(batch_size=10)
    world.real_waits = True  # this one test waits for real
    sandbox.state.faults.rate_limit_next = 2
    sandbox.state.faults.retry_after = "7"
    run = world.service(runner).run_now(world.project.id, sync_id)
    assert run.status == "succeeded", run.error
    timeline = sandbox.state.timeline
    limited = [i for i, (_, fault) in enumerate(timeline) if fault == "429"]
    assert len(limited) == 2
    for index in limited:
        gap = timeline[index + 1][0] - timeline[index][0]
        assert gap >= 7.0, f"a request came {gap:.2f} s after a 429 asking for 7 s"
    assert run.counts.rate_limited == 2 and run.counts.retries == 2
    _exact(world, sandbox, sync_id, cohort_id)


def test_429_without_retry_after_backs_off_with_capped_jitter(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["iterable"]
    sync_id, cohort_id = _export(world, sandbox, 40)
    runner = world.runner(
        _after_first_batch(lambda: setattr(sandbox.state.faults, "rate_limit_next", 4)),
        batch_size=10,
    )
    run = world.service(runner).run_now(world.project.id, sync_id)
    assert run.status == "succeeded", run.error
    policy = world.config.retry
    assert len(world.sleeps) == 4
    for attempt, wait in enumerate(world.sleeps):
        assert 0 <= wait <= min(policy.cap_seconds, policy.base_seconds * 2**attempt)
    assert len(set(world.sleeps)) == 4  # jittered, not a fixed ladder
    _exact(world, sandbox, sync_id, cohort_id)


def test_a_storm_longer_than_the_budget_fails_the_run_and_loses_nothing(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["xtremepush"]
    sync_id, cohort_id = _export(world, sandbox, 50)
    runner = world.runner(
        _after_first_batch(lambda: setattr(sandbox.state.faults, "server_error_next", 100)),
        batch_size=10,
    )
    failed = world.service(runner).run_now(world.project.id, sync_id)
    assert failed.status == "failed"
    assert "retry budget" in (failed.error or "")
    assert failed.counts.added == 10  # the first batch, acknowledged before the storm
    name = world.service().get(world.project.id, sync_id).list_name
    assert name is not None
    assert world.acknowledged(sync_id) == sandbox.state.members(name)  # nothing unaccounted
    sandbox.state.faults.server_error_next = 0
    again = world.service(runner).run_now(world.project.id, sync_id)
    assert again.status == "succeeded", again.error
    assert again.counts.planned_add == 40  # only what was not acknowledged
    _exact(world, sandbox, sync_id, cohort_id)


def test_5xx_and_timeouts_are_retried(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["clevertap"]
    sync_id, cohort_id = _export(world, sandbox, 30)

    def trouble() -> None:
        sandbox.state.faults.server_error_next = 2
        sandbox.state.faults.slow_next = 1
        sandbox.state.faults.slow_seconds = 3.0  # the client gives up after 2 s

    runner = world.runner(_after_first_batch(trouble), batch_size=10)
    run = world.service(runner).run_now(world.project.id, sync_id)
    assert run.status == "succeeded", run.error
    assert run.counts.retries == 3
    _exact(world, sandbox, sync_id, cohort_id)


def test_revoked_credentials_mid_run_stop_the_run_and_flag_the_integration(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["iterable"]
    sync_id, cohort_id = _export(world, sandbox, 30)
    runner = world.runner(
        _after_first_batch(lambda: setattr(sandbox.state.faults, "bad_credentials", True)),
        batch_size=10,
    )
    run = world.service(runner).run_now(world.project.id, sync_id)
    assert run.status == "failed"
    assert run.error is not None and "BadApiKey" in run.error  # the partner's own words
    assert run.counts.retries == 0  # a 401 is not retried
    integration = world.integrations.list(world.project.id)[0]
    assert integration.status == "error" and "BadApiKey" in (integration.error or "")
    name = world.service().get(world.project.id, sync_id).list_name
    assert name is not None
    assert world.acknowledged(sync_id) == sandbox.state.members(name)
    assert len(world.acknowledged(sync_id)) == 10
    # The admin fixes it (the key works again and the integration is re-checked): exact again.
    sandbox.state.faults.bad_credentials = False
    world.integrations.update(world.project.id, integration.id, name="Iterable")
    again = world.service(runner).run_now(world.project.id, sync_id)
    assert again.status == "succeeded", again.error
    _exact(world, sandbox, sync_id, cohort_id)


@pytest.mark.parametrize("partner", ["iterable", "xtremepush"])
def test_refused_members_are_recorded_and_retried_next_run(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox], partner: str
) -> None:
    sandbox = sandboxes[partner]
    sync_id, cohort_id = _export(world, sandbox, 25)
    suffix = "@x.io" if partner == "iterable" else ""  # Iterable's member key is the email
    refused = {f"u000003{suffix}", f"u000017{suffix}"}
    wire = {f"{u}" for u in refused}
    sandbox.state.faults.reject_keys = wire
    service = world.service(world.runner(batch_size=10))
    run = service.run_now(world.project.id, sync_id)
    assert run.status == "partial"
    assert sum(run.counts.rejected.values()) == 2
    expected, _ = world.expected(partner, cohort_id)
    name = service.get(world.project.id, sync_id).list_name
    assert name is not None
    assert sandbox.state.members(name) == expected - refused
    assert {r["member"] for r in service.rejections(world.project.id, sync_id)} == refused
    sandbox.state.faults.reject_keys = set()
    again = service.run_now(world.project.id, sync_id)
    assert again.status == "succeeded"
    assert again.counts.planned_add == 2
    assert service.rejections(world.project.id, sync_id) == []
    _exact(world, sandbox, sync_id, cohort_id)


def test_clevertap_concurrency_cap_is_never_exceeded_across_syncs(
    world: SyncWorld, sandboxes: dict[str, RunningSandbox]
) -> None:
    """Twenty syncs of one CleverTap account at once: at most 15 requests in flight."""
    sandbox = sandboxes["clevertap"]
    world.users(60, plan="pro")
    integration_id = world.connect(sandbox)
    service = world.service(world.runner(batch_size=3))
    syncs = []
    for index in range(20):
        cohort_id = world.cohort(f"Pro {index}", PLAN_PRO)
        syncs.append(service.export(world.project.id, cohort_id, integration_id, "dynamic"))
    sandbox.state.faults.max_concurrency = 15  # the 16th request in flight gets a 429
    sandbox.state.faults.latency_seconds = 0.2  # long enough for twenty syncs to overlap
    results: list[SyncRun] = []
    threads = [
        threading.Thread(target=lambda s=s: results.append(service.run_now(world.project.id, s.id)))
        for s in syncs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status for r in results] == ["succeeded"] * 20
    assert sandbox.state.peak_in_flight == 15  # the cap was reached, and never passed
    assert all(r.counts.rate_limited == 0 for r in results)
    for sync in syncs:
        _exact(world, sandbox, sync.id, sync.cohort_id)
