"""The syncs API (SPEC §11) over a live server against the partner emulators.

Data goes in through the Mixpanel-compatible ingestion endpoints; runs execute on the server's
background pool (its scheduler does not tick: lifespan is off), so each test polls the run
history until the run it started ends.
"""

from __future__ import annotations

import time
from itertools import count
from typing import Any

import httpx

from cohortsync.domain.accounts import Project
from cohortsync.sandbox.fleet import RunningSandbox
from tests.conftest import LiveServer

# SPEC §5, the "Dynamic sync interval" row
DEFAULT_INTERVAL = {"webhook": 30 * 60, "xtremepush": 2 * 3600}
BUYERS = {
    "any": [
        {"property": "plan", "op": "equals", "value": "pro"},
        {"event": "Purchase"},
    ]
}
PRO = {"property": "plan", "op": "equals", "value": "pro"}
_insert_ids = count()


def syncs_url(project: Project, suffix: str = "") -> str:
    return f"/api/v1/projects/{project.id}/syncs{suffix}"


# -- data in ----------------------------------------------------------------------------------


def engage(server: LiveServer, project: Project, profiles: dict[str, dict[str, Any]]) -> None:
    """``$set`` each user's properties through /engage."""
    updates = [
        {"$token": project.token, "$distinct_id": user, "$set": props}
        for user, props in profiles.items()
    ]
    with server.client() as client:
        reply = client.post("/engage?verbose=1", json=updates)
    assert reply.status_code == 200 and reply.json()["status"] == 1, reply.text


def track(server: LiveServer, project: Project, event: str, **identity: str) -> None:
    """One event an hour ago through /track (``distinct_id=`` or ``$device_id=``)."""
    when = int(server.clock.now().timestamp() * 1000) - 3_600_000
    properties = {"token": project.token, "time": when, "$insert_id": f"i{next(_insert_ids)}"}
    record = {"event": event, "properties": {**properties, **identity}}
    with server.client() as client:
        reply = client.post("/track?verbose=1", json=[record])
    assert reply.status_code == 200 and reply.json()["status"] == 1, reply.text


def buyers_world(server: LiveServer, project: Project) -> None:
    """ana and ben are pro, cy bought, dee neither; fox bought without a profile and a
    device bought without anyone logging in (both anonymous)."""
    engage(
        server,
        project,
        {
            "ana": {"plan": "pro"},
            "ben": {"plan": "pro"},
            "cy": {"plan": "free"},
            "dee": {"plan": "free"},
        },
    )
    track(server, project, "Purchase", distinct_id="cy")
    track(server, project, "Purchase", distinct_id="fox")
    track(server, project, "Purchase", **{"$device_id": "tablet-1"})


# -- API steps --------------------------------------------------------------------------------


def connect(api: httpx.Client, project: Project, sandbox: RunningSandbox) -> int:
    reply = api.post(f"/api/v1/projects/{project.id}/integrations", json=sandbox.integration())
    assert reply.status_code == 201 and reply.json()["status"] == "connected", reply.text
    integration_id: int = reply.json()["id"]
    return integration_id


def create_cohort(api: httpx.Client, project: Project, name: str, definition: Any) -> int:
    reply = api.post(
        f"/api/v1/projects/{project.id}/cohorts", json={"name": name, "definition": definition}
    )
    assert reply.status_code == 201, reply.text
    cohort_id: int = reply.json()["id"]
    return cohort_id


def export(
    api: httpx.Client, project: Project, cohort_id: int, integration_id: int, mode: str
) -> dict[str, Any]:
    reply = api.post(
        syncs_url(project),
        json={"cohort_id": cohort_id, "integration_id": integration_id, "mode": mode},
    )
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


def wait_for(
    api: httpx.Client, project: Project, sync_id: int, run_id: int, timeout: float = 20
) -> dict[str, Any]:
    """The run once it is no longer planning or running (polling the run history) and its
    worker has given the sync's lease back (a moment after the run's last write)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = api.get(syncs_url(project, f"/{sync_id}/runs"))
        assert reply.status_code == 200, reply.text
        run: dict[str, Any] = next(r for r in reply.json() if r["id"] == run_id)
        if run["status"] not in ("planning", "running"):
            break
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']}"
        time.sleep(0.05)
    while api.get(syncs_url(project, f"/{sync_id}")).json()["running"]:
        assert time.monotonic() < deadline, f"sync {sync_id} still leased after run {run_id}"
        time.sleep(0.02)
    return run


def run_now(api: httpx.Client, project: Project, sync_id: int) -> dict[str, Any]:
    """POST run (202), then wait for that run to end."""
    reply = api.post(syncs_url(project, f"/{sync_id}/run"))
    assert reply.status_code == 202, reply.text
    started = reply.json()
    assert started["sync_id"] == sync_id and started["status"] in ("planning", "running")
    return wait_for(api, project, sync_id, started["id"])


def on_the_list(
    api: httpx.Client, project: Project, sync_id: int, sandbox: RunningSandbox
) -> set[str]:
    """What the partner's list of the sync holds, read back from the emulator."""
    name = api.get(syncs_url(project, f"/{sync_id}")).json()["list_name"]
    assert name, "the sync has no list yet"
    return sandbox.state.members(name)


def assert_error(reply: httpx.Response, status: int, words: str) -> None:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) >= {"code", "message"}
    assert words in error["message"], error["message"]


# -- tests ------------------------------------------------------------------------------------


def test_admin_previews_exports_runs_and_reads_back_the_sync(
    admin: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sandbox = sandboxes["webhook"]
    buyers_world(live_server, project)
    integration_id = connect(admin, project, sandbox)
    cohort_id = create_cohort(admin, project, "Buyers", BUYERS)
    ids = {"cohort_id": cohort_id, "integration_id": integration_id}

    preview = admin.post(syncs_url(project, "/preview"), json=ids)
    assert preview.status_code == 200, preview.text
    assert preview.json() == {
        "members": 5,
        "add": 3,  # ana, ben, cy
        "update": 0,
        "remove": 0,
        "skip": {"anonymous": 2},  # fox (no profile) and the tablet
        "matched": 3,
        "coverage": 0.6,
    }
    assert sandbox.state.requests == [("POST", "/cohorts")]  # the connect check only

    sync = export(admin, project, cohort_id, integration_id, "dynamic")
    assert isinstance(sync["id"], int)
    assert (sync["status"], sync["mode"], sync["cohort_id"], sync["integration_id"]) == (
        "active",
        "dynamic",
        cohort_id,
        integration_id,
    )
    assert sync["interval_seconds"] == DEFAULT_INTERVAL["webhook"]
    assert admin.get(syncs_url(project, f"/{sync['id']}")).json()["last_run"] is None

    run = run_now(admin, project, sync["id"])
    assert run["status"] == "succeeded", run["error"]
    assert on_the_list(admin, project, sync["id"], sandbox) == {"ana", "ben", "cy"}

    history = admin.get(syncs_url(project, f"/{sync['id']}/runs")).json()
    assert [r["id"] for r in history] == [run["id"]]
    item = history[0]
    assert set(item) >= {"id", "status", "started_at", "finished_at", "counts", "error"}
    assert item["error"] is None and item["finished_at"] is not None
    assert item["counts"]["planned"] == {"add": 3, "update": 0, "remove": 0}
    assert (item["counts"]["added"], item["counts"]["removed"]) == (3, 0)
    assert item["counts"]["skipped"] == {"anonymous": 2}

    listed = admin.get(syncs_url(project)).json()
    assert [(s["id"], s["status"]) for s in listed] == [(sync["id"], "active")]
    got = admin.get(syncs_url(project, f"/{sync['id']}")).json()
    assert got["last_run"]["id"] == run["id"]
    assert got["last_run"]["status"] == "succeeded"

    # The list is in step now: a preview plans nothing more.
    again = admin.post(syncs_url(project, "/preview"), json=ids).json()
    assert (again["add"], again["update"], again["remove"]) == (0, 0, 0)


def test_re_export_replaces_the_previous_export(
    admin: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sandbox = sandboxes["webhook"]
    buyers_world(live_server, project)
    integration_id = connect(admin, project, sandbox)
    cohort_id = create_cohort(admin, project, "Buyers", BUYERS)
    first = export(admin, project, cohort_id, integration_id, "dynamic")
    assert run_now(admin, project, first["id"])["status"] == "succeeded"
    list_id = admin.get(syncs_url(project, f"/{first['id']}")).json()["list_id"]
    assert list_id

    again = export(admin, project, cohort_id, integration_id, "one_time")
    assert (again["id"], again["mode"], again["status"]) == (first["id"], "one_time", "active")
    listed = admin.get(syncs_url(project)).json()
    assert [(s["id"], s["mode"]) for s in listed] == [(first["id"], "one_time")]

    # Same list, same acknowledged members: the one-time run sends nothing new, then finishes.
    run = run_now(admin, project, first["id"])
    assert run["status"] == "succeeded", run["error"]
    assert (run["counts"]["added"], run["counts"]["removed"]) == (0, 0)
    assert on_the_list(admin, project, first["id"], sandbox) == {"ana", "ben", "cy"}
    done = admin.get(syncs_url(project, f"/{first['id']}")).json()
    assert (done["status"], done["next_run_at"], done["list_id"]) == ("finished", None, list_id)
    lists = {lst.name for lst in sandbox.state.lists.values()}
    assert lists == {"cohortsync connection check", "Buyers"}


def test_stop_then_run_now_is_a_conflict(
    admin: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    engage(live_server, project, {"ana": {"plan": "pro"}})
    integration_id = connect(admin, project, sandboxes["xtremepush"])
    cohort_id = create_cohort(admin, project, "Pro", PRO)
    sync = export(admin, project, cohort_id, integration_id, "dynamic")
    assert sync["interval_seconds"] == DEFAULT_INTERVAL["xtremepush"]

    stopped = admin.delete(syncs_url(project, f"/{sync['id']}"))
    assert stopped.status_code == 200, stopped.text
    assert (stopped.json()["status"], stopped.json()["next_run_at"]) == ("stopped", None)
    assert admin.get(syncs_url(project, f"/{sync['id']}")).json()["status"] == "stopped"

    refused = admin.post(syncs_url(project, f"/{sync['id']}/run"))
    assert_error(refused, 409, "stopped")
    assert refused.json()["error"]["code"] == "conflict"
    assert admin.get(syncs_url(project, f"/{sync['id']}/runs")).json() == []
    assert sandboxes["xtremepush"].state.received == 0  # nothing was sent

    # As the 409 says: exporting the cohort again starts it again.
    again = export(admin, project, cohort_id, integration_id, "dynamic")
    assert (again["id"], again["status"]) == (sync["id"], "active")
    assert run_now(admin, project, sync["id"])["status"] == "succeeded"
    assert on_the_list(admin, project, sync["id"], sandboxes["xtremepush"]) == {"ana"}


def test_a_member_may_look_but_not_export_run_confirm_or_stop(
    admin: httpx.Client,
    member: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    buyers_world(live_server, project)
    integration_id = connect(admin, project, sandboxes["webhook"])
    cohort_id = create_cohort(admin, project, "Buyers", BUYERS)
    ids = {"cohort_id": cohort_id, "integration_id": integration_id}
    sync = export(admin, project, cohort_id, integration_id, "dynamic")
    item = syncs_url(project, f"/{sync['id']}")

    assert [s["id"] for s in member.get(syncs_url(project)).json()] == [sync["id"]]
    assert member.get(item).json()["status"] == "active"
    assert member.get(f"{item}/runs").json() == []
    looked = member.post(syncs_url(project, "/preview"), json=ids)
    assert looked.status_code == 200 and looked.json()["add"] == 3

    attempts = [
        member.post(syncs_url(project), json={**ids, "mode": "one_time"}),
        member.post(f"{item}/run"),
        member.post(f"{item}/confirm"),
        member.delete(item),
    ]
    for reply in attempts:
        assert_error(reply, 403, "only project admins")
    after = admin.get(item).json()
    assert (after["mode"], after["status"], after["last_run"]) == ("dynamic", "active", None)
    assert sandboxes["webhook"].state.received == 0  # nothing was sent

    with live_server.client() as anonymous:
        for reply in [
            anonymous.get(syncs_url(project)),
            anonymous.get(f"{item}/runs"),
            anonymous.post(syncs_url(project, "/preview"), json=ids),
            anonymous.post(f"{item}/run"),
            anonymous.delete(item),
        ]:
            assert reply.status_code == 401, reply.text
            assert reply.json()["error"]["code"] == "unauthorized"
    assert admin.get(item).json()["status"] == "active"


def test_bad_exports_say_what_is_wrong(
    admin: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    integration_id = connect(admin, project, sandboxes["webhook"])
    cohort_id = create_cohort(admin, project, "Pro", PRO)
    ids = {"cohort_id": cohort_id, "integration_id": integration_id}

    assert_error(admin.post(syncs_url(project), json={**ids, "mode": "forever"}), 400, "mode")
    assert_error(admin.post(syncs_url(project), json=ids), 400, "mode")  # missing
    assert_error(
        admin.post(syncs_url(project), json={**ids, "mode": "dynamic", "interval_seconds": 59}),
        400,
        "interval_seconds must be at least 60",
    )
    missing_cohort = {"cohort_id": 999_999, "integration_id": integration_id, "mode": "dynamic"}
    assert_error(admin.post(syncs_url(project), json=missing_cohort), 404, "999999")
    missing_integration = {"cohort_id": cohort_id, "integration_id": 999_999, "mode": "dynamic"}
    assert_error(admin.post(syncs_url(project), json=missing_integration), 404, "999999")
    assert_error(
        admin.post(syncs_url(project, "/preview"), json={**ids, "cohort_id": 999_999}),
        404,
        "999999",
    )
    assert_error(admin.get(syncs_url(project, "/999999")), 404, "999999")
    assert admin.get(syncs_url(project)).json() == []

    # The shortest interval allowed is accepted.
    quick = admin.post(syncs_url(project), json={**ids, "mode": "dynamic", "interval_seconds": 60})
    assert quick.status_code == 201 and quick.json()["interval_seconds"] == 60

    other = connect(admin, project, sandboxes["xtremepush"])
    assert admin.delete(f"/api/v1/projects/{project.id}/integrations/{other}").status_code == 200
    assert_error(
        admin.post(
            syncs_url(project),
            json={"cohort_id": cohort_id, "integration_id": other, "mode": "dynamic"},
        ),
        409,
        "disconnected",
    )
    assert [s["integration_id"] for s in admin.get(syncs_url(project)).json()] == [integration_id]


def test_disconnecting_an_integration_stops_its_syncs(
    admin: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    engage(live_server, project, {"ana": {"plan": "pro"}})
    integration_id = connect(admin, project, sandboxes["webhook"])
    cohort_id = create_cohort(admin, project, "Pro", PRO)
    sync = export(admin, project, cohort_id, integration_id, "dynamic")
    assert run_now(admin, project, sync["id"])["status"] == "succeeded"

    gone = admin.delete(f"/api/v1/projects/{project.id}/integrations/{integration_id}")
    assert gone.status_code == 200 and gone.json()["status"] == "disconnected"
    after = admin.get(syncs_url(project, f"/{sync['id']}")).json()
    assert (after["status"], after["next_run_at"]) == ("stopped", None)
    assert_error(admin.post(syncs_url(project, f"/{sync['id']}/run")), 409, "stopped")


def test_a_run_emptying_the_list_waits_for_an_admins_confirm(
    admin: httpx.Client,
    member: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sandbox = sandboxes["xtremepush"]
    users = [f"u{i:02d}" for i in range(12)]
    engage(live_server, project, {u: {"plan": "pro"} for u in users})
    integration_id = connect(admin, project, sandbox)
    cohort_id = create_cohort(admin, project, "Pro", PRO)
    sync = export(admin, project, cohort_id, integration_id, "dynamic")
    item = syncs_url(project, f"/{sync['id']}")
    assert run_now(admin, project, sync["id"])["status"] == "succeeded"
    assert on_the_list(admin, project, sync["id"], sandbox) == set(users)

    engage(live_server, project, {u: {"plan": "free"} for u in users})
    blocked = run_now(admin, project, sync["id"])
    assert blocked["status"] == "blocked"
    assert blocked["blocked_reason"] and "12" in blocked["blocked_reason"]
    assert blocked["counts"]["removed"] == 0
    assert on_the_list(admin, project, sync["id"], sandbox) == set(users)
    assert admin.get(item).json()["last_run"]["status"] == "blocked"

    assert_error(member.post(f"{item}/confirm"), 403, "only project admins")
    assert admin.get(item).json()["last_run"]["status"] == "blocked"
    assert on_the_list(admin, project, sync["id"], sandbox) == set(users)

    confirmed = admin.post(f"{item}/confirm")
    assert confirmed.status_code == 202, confirmed.text
    assert confirmed.json()["id"] == blocked["id"]
    assert confirmed.json()["confirmed_by"] is not None
    done = wait_for(admin, project, sync["id"], blocked["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["counts"]["removed"] == 12
    assert on_the_list(admin, project, sync["id"], sandbox) == set()
    # Nothing left to confirm.
    assert_error(admin.post(f"{item}/confirm"), 409, "no blocked run")


def _slow_sync(
    admin: httpx.Client, live_server: LiveServer, project: Project, sandbox: RunningSandbox
) -> tuple[dict[str, Any], str]:
    """A dynamic sync of ana and ben to the webhook emulator, whose every call now takes 1.5 s
    (a run is certainly still going when the test acts on it); the sync and its URL."""
    engage(live_server, project, {"ana": {"plan": "pro"}, "ben": {"plan": "pro"}})
    integration_id = connect(admin, project, sandbox)
    cohort_id = create_cohort(admin, project, "Pro", PRO)
    sync = export(admin, project, cohort_id, integration_id, "dynamic")
    sandbox.state.faults.latency_seconds = 1.5
    return sync, syncs_url(project, f"/{sync['id']}")


def test_run_now_while_a_run_is_in_progress_is_a_conflict(
    admin: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sandbox = sandboxes["webhook"]
    sync, item = _slow_sync(admin, live_server, project, sandbox)

    started = admin.post(f"{item}/run")
    assert started.status_code == 202, started.text
    second = admin.post(f"{item}/run")
    assert_error(second, 409, "already running")
    assert admin.get(item).json()["running"] is True
    assert [r["id"] for r in admin.get(f"{item}/runs").json()] == [started.json()["id"]]

    done = wait_for(admin, project, sync["id"], started.json()["id"])
    assert done["status"] == "succeeded", done["error"]
    assert admin.get(item).json()["running"] is False
    assert on_the_list(admin, project, sync["id"], sandbox) == {"ana", "ben"}


def test_stopping_a_sync_mid_run_ends_the_run(
    admin: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sandbox = sandboxes["webhook"]
    sync, item = _slow_sync(admin, live_server, project, sandbox)

    started = admin.post(f"{item}/run")
    assert started.status_code == 202, started.text
    stopped = admin.delete(item)
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"

    ended = wait_for(admin, project, sync["id"], started.json()["id"])
    assert ended["status"] == "failed"
    assert "stopped" in ended["error"]
    after = admin.get(item).json()
    assert (after["status"], after["next_run_at"], after["running"]) == ("stopped", None, False)
    assert_error(admin.post(f"{item}/run"), 409, "stopped")
