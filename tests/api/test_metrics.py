"""``GET /metrics`` (R-OBS-1) over a live server: what a sync run sent and how it ended, partner
errors, how late syncs are, and what the ingestion endpoints and webhooks stored."""

from __future__ import annotations

from datetime import timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families

from cohortsync.domain.accounts import Project
from cohortsync.sandbox.fleet import RunningSandbox
from tests.conftest import LiveServer
from tests.sync.conftest import admin  # noqa: F401 - the fixture, used by name
from tests.sync.test_api import (
    BUYERS,
    PRO,
    buyers_world,
    connect,
    create_cohort,
    engage,
    export,
    run_now,
    syncs_url,
    track,
    wait_for,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: LiveServer) -> Samples:
    """Every sample of /metrics, by name and labels."""
    with server.client() as client:
        reply = client.get("/metrics")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How much a sample grew between two scrapes (absent counts as 0)."""
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_runs_members_errors_lag_and_data_in(
    admin: httpx.Client,  # noqa: F811 - the fixture imported above
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sandbox = sandboxes["webhook"]
    start = scrape(live_server)

    buyers_world(live_server, project)  # 4 profile updates, 3 events
    data_in = scrape(live_server)
    assert grew(start, data_in, "cohortsync_records_ingested_total", endpoint="engage") == 4
    assert grew(start, data_in, "cohortsync_records_ingested_total", endpoint="track") == 3

    integration_id = connect(admin, project, sandbox)
    cohort_id = create_cohort(admin, project, "Buyers", BUYERS)
    sync = export(admin, project, cohort_id, integration_id, "dynamic")
    first = run_now(admin, project, sync["id"])
    assert first["status"] == "succeeded" and first["counts"]["added"] == 3, first
    after_run = scrape(live_server)
    runs = "cohortsync_sync_runs_total"
    assert grew(data_in, after_run, runs, partner="webhook", status="succeeded") == 1
    members = "cohortsync_sync_members_total"
    assert grew(data_in, after_run, members, partner="webhook", change="added") == 3
    assert grew(data_in, after_run, members, partner="webhook", change="removed") == 0
    requests = "cohortsync_partner_requests_total"
    sent = grew(data_in, after_run, requests, partner="webhook", outcome="sent")
    assert sent == first["counts"]["requests"] > 0
    lag = ("cohortsync_sync_lag_seconds", (("partner", "webhook"),))
    assert after_run[lag] == 0  # the next run is 30 minutes away

    live_server.clock.advance(timedelta(minutes=40))  # the scheduler is not ticking here
    assert scrape(live_server)[lag] == 10 * 60

    track(live_server, project, "Purchase", distinct_id="dee")  # one more to send
    sandbox.state.faults.bad_credentials = True  # the partner revoked the key
    failed = run_now(admin, project, sync["id"])
    assert failed["status"] == "failed", failed
    after_failure = scrape(live_server)
    assert grew(after_run, after_failure, runs, partner="webhook", status="failed") == 1
    errors = "cohortsync_partner_errors_total"
    assert grew(after_run, after_failure, errors, partner="webhook") == 1


def test_a_blocked_run_is_counted_as_blocked_then_once_when_it_ends(
    admin: httpx.Client,  # noqa: F811 - the fixture imported above
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    users = {f"u{i:02d}": {"plan": "pro"} for i in range(12)}
    engage(live_server, project, users)
    integration_id = connect(admin, project, sandboxes["xtremepush"])
    sync = export(
        admin, project, create_cohort(admin, project, "Pro", PRO), integration_id, "dynamic"
    )
    assert run_now(admin, project, sync["id"])["status"] == "succeeded"
    engage(live_server, project, {user: {"plan": "free"} for user in users})
    before = scrape(live_server)
    blocked = run_now(admin, project, sync["id"])
    assert blocked["status"] == "blocked"
    held = scrape(live_server)
    assert grew(before, held, "cohortsync_sync_blocked_runs_total", partner="xtremepush") == 1
    runs = "cohortsync_sync_runs_total"
    assert sum(v for (name, _), v in held.items() if name == runs) == sum(
        v for (name, _), v in before.items() if name == runs
    )
    lag = ("cohortsync_sync_lag_seconds", (("partner", "xtremepush"),))
    live_server.clock.advance(timedelta(hours=3))  # past its 2-hour interval, but held on purpose
    assert scrape(live_server).get(lag, 0.0) == 0.0

    assert admin.post(syncs_url(project, f"/{sync['id']}/confirm")).status_code == 202
    done = wait_for(admin, project, sync["id"], blocked["id"])
    assert done["status"] == "succeeded"
    after = scrape(live_server)
    assert grew(before, after, runs, partner="xtremepush", status="succeeded") == 1
    assert grew(before, after, runs, partner="xtremepush", status="blocked") == 0
    members = "cohortsync_sync_members_total"
    assert grew(before, after, members, partner="xtremepush", change="removed") == 12


def test_metrics_hold_no_secrets(live_server: LiveServer, project: Project) -> None:
    with live_server.client() as client:
        text = client.get("/metrics").text
    assert project.token not in text
    assert "cohortsync_sync_runs" in text
