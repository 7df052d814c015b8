"""The Syncs page answers "why is … (not) on the list?" and gives each run's skipped and rejected
members as CSV, to any member of the project and to nobody else."""

from __future__ import annotations

import csv
import io
from contextlib import closing

import httpx
from playwright.sync_api import expect

from cohortsync.domain.accounts import Project
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.services.projects import ProjectService
from tests.conftest import LiveServer
from tests.helpers import admin_token
from tests.sync.test_api import (
    BUYERS,
    buyers_world,
    connect,
    create_cohort,
    engage,
    export,
    run_now,
)
from tests.web.conftest import ADMIN, MEMBER, SQLITE_ONLY, Browsing, sign_in_http

pytestmark = SQLITE_ONLY


def _buyers_sync(
    live_server: LiveServer, people: Project, admin_api: httpx.Client, sandbox: RunningSandbox
) -> tuple[int, int]:
    """ana and ben (pro) and cy (bought) on the list; fox and a tablet skipped as anonymous;
    dee neither. Returns the sync and its first run."""
    buyers_world(live_server, people)
    cohort_id = create_cohort(admin_api, people, "Buyers", BUYERS)
    sync = export(admin_api, people, cohort_id, connect(admin_api, people, sandbox), "dynamic")
    run = run_now(admin_api, people, sync["id"])
    assert run["status"] == "succeeded", run["error"]
    return sync["id"], run["id"]


def test_a_member_asks_why_someone_is_or_is_not_on_the_list(
    browsing: Browsing,
    people: Project,
    live_server: LiveServer,
    admin_api: httpx.Client,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sync_id, _ = _buyers_sync(live_server, people, admin_api, sandboxes["xtremepush"])
    browsing.sign_in(MEMBER)
    page = browsing.page
    page.goto(f"/projects/{people.id}/syncs")
    row = page.locator(f"#sync-{sync_id}")
    row.get_by_text("Why is … (not) on the list?").click()
    asked = row.get_by_label("Any id of the user")
    summary = row.get_by_test_id("explain-summary")

    asked.fill("ana")
    row.get_by_role("button", name="Explain").click()
    expect(summary).to_contain_text(
        "On the list: in the cohort, identified, sent as ana, acknowledged."
    )
    conditions = row.get_by_test_id("condition")
    expect(conditions).to_have_count(2)
    expect(conditions.nth(0)).to_have_attribute("data-met", "yes")
    expect(conditions.nth(0)).to_contain_text('1. plan equals "pro": plan is "pro"')
    expect(conditions.nth(1)).to_have_attribute("data-met", "no")
    expect(conditions.nth(1)).to_contain_text("2. Purchase ≥ 1: 0 events")

    asked.fill("dee")
    row.get_by_role("button", name="Explain").click()
    expect(summary).to_contain_text(
        'Not on the list: none of the conditions is met (1. plan equals "pro": plan is "free"; '
        "2. Purchase ≥ 1: 0 events)."
    )
    browsing.shoot("syncs-explain")

    asked.fill("tablet-1")  # a device nobody logged in on: any id of the user works
    row.get_by_role("button", name="Explain").click()
    expect(summary).to_contain_text("Not on the list: in the cohort, but skipped (anonymous).")
    expect(row.get_by_test_id("explanation")).to_contain_text("no (no profile properties)")

    asked.fill("nobody")
    row.get_by_role("button", name="Explain").click()
    expect(summary).to_have_text(f"no user with distinct_id 'nobody' in project {people.id}")


def test_each_run_gives_its_skipped_and_rejected_members_as_csv(
    browsing: Browsing,
    people: Project,
    live_server: LiveServer,
    admin_api: httpx.Client,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sandbox = sandboxes["xtremepush"]
    sandbox.state.faults.reject_keys = {"=cmd|calc"}  # a formula, as any SDK may send it
    buyers_world(live_server, people)
    with live_server.client() as client:  # an id a spreadsheet would run as a formula
        reply = client.post(
            "/engage?verbose=1",
            json=[{"$token": people.token, "$distinct_id": "=cmd|calc", "$set": {"plan": "pro"}}],
        )
        assert reply.json()["status"] == 1, reply.text
    cohort_id = create_cohort(admin_api, people, "Buyers", BUYERS)
    sync = export(admin_api, people, cohort_id, connect(admin_api, people, sandbox), "dynamic")
    run = run_now(admin_api, people, sync["id"])
    assert run["status"] == "partial", run

    browsing.sign_in(MEMBER)
    page = browsing.page
    page.goto(f"/projects/{people.id}/syncs")
    row = page.locator(f"#sync-{sync['id']}")
    row.locator("details.history > summary").click()
    link = row.get_by_test_id("run-members-csv")
    expect(link).to_have_text("skipped & rejected (CSV)")
    with page.expect_download() as started:
        link.click()
    download = started.value
    assert download.suggested_filename == f"sync-{sync['id']}-run-{run['id']}-skipped-rejected.csv"
    rows = list(csv.reader(io.StringIO(download.path().read_text(encoding="utf-8"))))
    reason = rows[2][3]
    assert rows == [
        ["distinct_id", "partner_key", "outcome", "reason"],
        ["$device:tablet-1", "", "skipped", "anonymous"],
        ["'=cmd|calc", "'=cmd|calc", "rejected", reason],
        ["fox", "", "skipped", "anonymous"],
    ]
    assert reason

    # The same as JSON, paged, for the API's users.
    api = f"/api/v1/projects/{people.id}/syncs/{sync['id']}/runs/{run['id']}/members"
    first = admin_api.get(api, params={"limit": 2}).json()
    assert [m["distinct_id"] for m in first["members"]] == ["$device:tablet-1", "=cmd|calc"]
    rest = admin_api.get(api, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert rest == {
        "members": [
            {"distinct_id": "fox", "partner_key": None, "outcome": "skipped", "reason": "anonymous"}
        ],
        "next_cursor": None,
    }


def test_explain_and_the_csv_are_for_the_projects_people_only(
    live_server: LiveServer,
    people: Project,
    admin_api: httpx.Client,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sync_id, run_id = _buyers_sync(live_server, people, admin_api, sandboxes["webhook"])
    base = f"/projects/{people.id}/syncs/{sync_id}"
    paths = [f"{base}/explain?distinct_id=ana", f"{base}/runs/{run_id}/members.csv"]
    with live_server.client() as stranger:
        for path in paths:
            answer = stranger.get(path, follow_redirects=False)
            assert (answer.status_code, answer.headers["location"]) == (303, "/login"), path

    other = ProjectService(live_server.engine, live_server.clock).create("Other")
    admin_token(live_server.engine, other.id, "other-admin@example.com")  # PASSWORD, too
    with closing(sign_in_http(live_server, "other-admin@example.com").client) as outsider:
        for path in paths:
            assert outsider.get(path).status_code == 404, path
        theirs = f"/projects/{other.id}/syncs/{sync_id}"  # their project, this project's sync
        assert outsider.get(f"{theirs}/explain?distinct_id=ana").status_code == 404
        assert outsider.get(f"{theirs}/runs/{run_id}/members.csv").status_code == 404

    with closing(sign_in_http(live_server, MEMBER).client) as client:
        csv_reply = client.get(f"{base}/runs/{run_id}/members.csv")
        assert csv_reply.status_code == 200
        assert csv_reply.headers["content-type"].startswith("text/csv")
        assert csv_reply.text.splitlines()[0] == "distinct_id,partner_key,outcome,reason"
        explained = client.get(f"{base}/explain", params={"distinct_id": "cy"})
        assert explained.status_code == 200
        assert "On the list: in the cohort, identified, sent as cy, acknowledged." in explained.text


def test_an_admin_checks_an_iterable_list_edited_by_hand_and_sees_the_drift_repaired(
    browsing: Browsing,
    people: Project,
    live_server: LiveServer,
    admin_api: httpx.Client,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sandbox = sandboxes["iterable"]
    buyers_world(live_server, people)
    engage(live_server, people, {u: {"$email": f"{u}@x.io"} for u in ("ana", "ben", "cy")})
    cohort_id = create_cohort(admin_api, people, "Buyers", BUYERS)
    sync = export(admin_api, people, cohort_id, connect(admin_api, people, sandbox), "dynamic")
    assert run_now(admin_api, people, sync["id"])["status"] == "succeeded"
    list_id = admin_api.get(f"/api/v1/projects/{people.id}/syncs/{sync['id']}").json()["list_id"]
    sandbox.state.edit_by_hand(list_id, remove=["ben@x.io"], add=["stranger@x.io"])

    browsing.sign_in(ADMIN)
    page = browsing.page
    page.goto(f"/projects/{people.id}/syncs")
    row = page.locator(f"#sync-{sync['id']}")
    row.get_by_role("button", name="Check list & run").click()

    expect(row.get_by_test_id("run-drift")).to_contain_text(
        "read back: 1 missing, 1 extra, repaired", timeout=15_000
    )
    assert sandbox.state.members(sandbox.state.lists[list_id].name) == {
        "ana@x.io",
        "ben@x.io",
        "cy@x.io",
    }
    browsing.shoot("syncs-list-check")
