"""The members a run skipped or the partner rejected (R-SYN-7), read through the API: pages behind
a keyset cursor, one outcome or both, and the whole list as streamed CSV; and explain over HTTP."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from cohortsync.domain.accounts import Project
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.services import run_members
from cohortsync.storage.database import write_transaction
from cohortsync.storage.tables import sync_run_members
from tests.conftest import LiveServer
from tests.sync.test_api import (
    BUYERS,
    assert_error,
    buyers_world,
    connect,
    create_cohort,
    export,
    run_now,
    syncs_url,
)


def buyers_run(
    admin: httpx.Client, server: LiveServer, project: Project, sandbox: RunningSandbox
) -> tuple[int, int]:
    """A finished run of the Buyers export (fox and a tablet skipped as anonymous)."""
    buyers_world(server, project)
    cohort_id = create_cohort(admin, project, "Buyers", BUYERS)
    sync_id: int = export(admin, project, cohort_id, connect(admin, project, sandbox), "dynamic")[
        "id"
    ]
    run = run_now(admin, project, sync_id)
    assert run["status"] == "succeeded", run["error"]
    return sync_id, run["id"]


def add_rows(server: LiveServer, run_id: int, rows: list[tuple[str, str, str | None, str]]) -> None:
    """Rows (outcome, distinct_id, key, reason) as the engine writes them."""
    with write_transaction(server.engine) as connection:
        connection.execute(
            sync_run_members.insert(),
            [
                {"run_id": run_id, "outcome": o, "distinct_id": d, "member_key": k, "reason": r}
                for o, d, k, r in rows
            ],
        )


def pages(client: httpx.Client, url: str, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page, following next_cursor."""
    found, cursor = [], None
    while True:
        reply = client.get(url, params={**params, **({"cursor": cursor} if cursor else {})})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        found.append(body["members"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def test_pages_of_one_outcome_or_both_in_distinct_id_order(
    admin: httpx.Client,
    member: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sync_id, run_id = buyers_run(admin, live_server, project, sandboxes["webhook"])
    # ann is both: skipped once her email went, and the partner refused to take her off
    add_rows(
        live_server,
        run_id,
        [
            ("rejected", "ann", "ann@x.io", "user forgotten (GDPR)"),
            ("skipped", "ann", None, "missing email"),
            ("rejected", "zed", "zed@x.io", "invalid email"),
            ("skipped", "yan", None, "missing email"),
        ],
    )
    url = syncs_url(project, f"/{sync_id}/runs/{run_id}/members")

    both = pages(member, url, limit=2)  # members may read
    assert [len(page) for page in both] == [2, 2, 2]
    flat = [(m["distinct_id"], m["outcome"]) for page in both for m in page]
    assert flat == [
        ("$device:tablet-1", "skipped"),  # written by the run itself
        ("ann", "rejected"),
        ("ann", "skipped"),
        ("fox", "skipped"),
        ("yan", "skipped"),
        ("zed", "rejected"),
    ]
    assert both[0][1] == {
        "distinct_id": "ann",
        "partner_key": "ann@x.io",
        "outcome": "rejected",
        "reason": "user forgotten (GDPR)",
    }
    rejected = pages(member, url, outcome="rejected", limit=1)
    assert [[m["distinct_id"] for m in page] for page in rejected] == [["ann"], ["zed"]]
    skipped = member.get(url, params={"outcome": "skipped"}).json()
    assert [m["distinct_id"] for m in skipped["members"]] == [
        "$device:tablet-1",
        "ann",
        "fox",
        "yan",
    ]
    assert skipped["next_cursor"] is None
    assert {m["reason"] for m in skipped["members"]} == {"anonymous", "missing email"}


def test_the_csv_is_every_row_and_spreadsheets_run_none_of_it(
    admin: httpx.Client,
    member: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sync_id, run_id = buyers_run(admin, live_server, project, sandboxes["webhook"])
    many = [("skipped", f"u{i:05d}", None, "missing email") for i in range(2_500)]
    add_rows(live_server, run_id, [*many, ("rejected", "@sum", "+1", '-bad, "quoted"\nline')])

    reply = member.get(syncs_url(project, f"/{sync_id}/runs/{run_id}/members.csv"))
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    filename = run_members.csv_filename(sync_id, run_id)
    assert reply.headers["content-disposition"] == f'attachment; filename="{filename}"'
    rows = list(csv.reader(io.StringIO(reply.text)))
    assert rows[0] == ["distinct_id", "partner_key", "outcome", "reason"]
    assert len(rows) == 1 + 2 + 2_500 + 1  # two anonymous members from the run itself
    assert rows[1] == ["$device:tablet-1", "", "skipped", "anonymous"]
    assert rows[2] == ["'@sum", "'+1", "rejected", '\'-bad, "quoted"\nline']
    assert rows[3] == ["fox", "", "skipped", "anonymous"]
    assert [r[0] for r in rows[4:]] == [f"u{i:05d}" for i in range(2_500)]


def test_bad_requests_and_other_runs_are_refused(
    admin: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sync_id, run_id = buyers_run(admin, live_server, project, sandboxes["webhook"])
    url = syncs_url(project, f"/{sync_id}/runs/{run_id}/members")
    assert_error(admin.get(url, params={"outcome": "sent"}), 400, "skipped, rejected")
    assert_error(admin.get(url, params={"cursor": "not-a-cursor"}), 400, "next_cursor")
    assert admin.get(url, params={"limit": 0}).status_code == 400
    assert admin.get(url, params={"limit": 1001}).status_code == 400

    other_cohort = create_cohort(admin, project, "Other", {"property": "plan", "op": "is_set"})
    other = export(
        admin, project, other_cohort, connect(admin, project, sandboxes["xtremepush"]), "dynamic"
    )
    wrong = syncs_url(project, f"/{other['id']}/runs/{run_id}/members")  # not that sync's run
    assert_error(admin.get(wrong), 404, f"run {run_id}")
    assert_error(admin.get(f"{wrong}.csv"), 404, f"run {run_id}")
    assert_error(admin.get(syncs_url(project, f"/{sync_id}/runs/99999/members.csv")), 404, "99999")
    with live_server.client() as anonymous:
        assert anonymous.get(url).status_code == 401
        assert anonymous.get(f"{url}.csv").status_code == 401


def test_explain_over_http_for_any_member(
    admin: httpx.Client,
    member: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sync_id, _ = buyers_run(admin, live_server, project, sandboxes["webhook"])
    url = syncs_url(project, f"/{sync_id}/explain")

    cy = member.get(url, params={"distinct_id": "cy"})
    assert cy.status_code == 200, cy.text
    body = cy.json()
    assert set(body) >= {
        "in_cohort",
        "conditions",
        "identified",
        "partner_key",
        "skip_reason",
        "acknowledged",
        "on_partner_list",
        "last_rejection",
        "summary",
    }
    assert (body["in_cohort"], body["match"], body["partner_key"]) == (True, "any", "cy")
    assert [c["met"] for c in body["conditions"]] == [False, True]
    assert body["conditions"][1]["count"] == 1
    assert body["summary"] == "On the list: in the cohort, identified, sent as cy, acknowledged."

    tablet = member.get(url, params={"distinct_id": "tablet-1"}).json()
    assert (tablet["distinct_id"], tablet["skip_reason"]) == ("$device:tablet-1", "anonymous")

    assert_error(member.get(url, params={"distinct_id": "nobody"}), 404, "'nobody'")
    assert member.get(url).status_code == 400  # distinct_id is required
    assert_error(member.get(syncs_url(project, "/999/explain?distinct_id=cy")), 404, "sync 999")
    with live_server.client() as anonymous:
        assert anonymous.get(url, params={"distinct_id": "cy"}).status_code == 401
