"""The cohorts API over a live server: CRUD, members paging, static uploads, errors with paths."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from cohortsync.clock import SystemClock
from cohortsync.domain.accounts import Project, Role
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.projects import ProjectService
from tests.cohorts.dataset import seed
from tests.conftest import LiveServer
from tests.helpers import accounts, admin_token


@pytest.fixture
def api(live_server: LiveServer, engine: Engine, project: Project) -> httpx.Client:
    seed(IngestionService(engine, live_server.clock), project)
    token = admin_token(engine, project.id)
    return live_server.client(headers={"Authorization": f"Bearer {token}"})


def test_create_read_update_delete_and_members(api: httpx.Client, project: Project) -> None:
    base = f"/api/v1/projects/{project.id}/cohorts"
    created = api.post(
        base,
        json={
            "name": "Pro buyers",
            "description": "paid and buying",
            "definition": {
                "all": [{"property": "plan", "op": "equals", "value": "pro"}, {"event": "Purchase"}]
            },
        },
    )
    assert created.status_code == 201, created.text
    cohort = created.json()
    assert cohort["name"] == "Pro buyers" and cohort["kind"] == "dynamic"
    got = api.get(f"{base}/{cohort['id']}").json()
    assert got["count"] == 1  # ana (fay is pro but never purchased)
    assert [c["id"] for c in api.get(base).json()] == [cohort["id"]]

    changed = api.put(
        f"{base}/{cohort['id']}",
        json={"definition": {"property": "$email", "op": "contains", "value": "@x.io"}},
    )
    assert changed.status_code == 200
    first = api.get(
        f"{base}/{cohort['id']}/members", params={"limit": 2, "properties": "$email,plan"}
    ).json()
    assert first["count"] == 5
    assert [m["distinct_id"] for m in first["members"]] == ["ana", "ben"]
    assert first["members"][0]["properties"] == {"$email": "ana@x.io", "plan": "pro"}
    assert first["members"][0]["identified"] is True
    seen = [m["distinct_id"] for m in first["members"]]
    cursor = first["next_cursor"]
    while cursor:
        page = api.get(
            f"{base}/{cohort['id']}/members", params={"limit": 2, "cursor": cursor}
        ).json()
        seen += [m["distinct_id"] for m in page["members"]]
        cursor = page["next_cursor"]
    assert seen == ["ana", "ben", "cleo", "hal", "ivy"]

    assert api.delete(f"{base}/{cohort['id']}").status_code == 204
    assert api.get(f"{base}/{cohort['id']}").status_code == 404


def test_static_cohorts_from_ids_emails_and_csv(api: httpx.Client, project: Project) -> None:
    base = f"/api/v1/projects/{project.id}/cohorts"
    from_json = api.post(
        f"{base}/static",
        json={
            "name": "VIPs",
            "distinct_ids": ["hal-phone", "gus"],
            "emails": ["ana@x.io", "nobody@x.io"],
        },
    )
    assert from_json.status_code == 201, from_json.text
    members = api.get(f"{base}/{from_json.json()['id']}/members").json()
    assert sorted(m["distinct_id"] for m in members["members"]) == ["ana", "gus", "hal"]

    csv_body = "email,note\nben@x.io,a\ncleo@x.io,b\n"
    from_csv = api.post(
        f"{base}/static",
        params={"name": "From CSV"},
        content=csv_body,
        headers={"Content-Type": "text/csv"},
    )
    assert from_csv.status_code == 201, from_csv.text
    csv_members = api.get(f"{base}/{from_csv.json()['id']}/members").json()
    assert [m["distinct_id"] for m in csv_members["members"]] == ["ben", "cleo"]

    in_static = api.post(
        base,
        json={
            "name": "VIP buyers",
            "definition": {"all": [{"in_cohort": from_json.json()["id"]}, {"event": "Purchase"}]},
        },
    )
    assert api.get(f"{base}/{in_static.json()['id']}").json()["count"] == 2  # ana, hal
    refused = api.delete(f"{base}/{from_json.json()['id']}")
    assert refused.status_code == 409 and "refers to this cohort" in refused.text


BAD_DEFINITIONS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "unknown operator",
        {"property": "plan", "op": "resembles", "value": "x"},
        "$.op",
        "unknown operator 'resembles'",
    ),
    (
        "wrong value type",
        {"all": [{"property": "age", "op": "gt", "value": [1]}]},
        "$.all[0].value",
        "needs a number or a date/time string",
    ),
    (
        "unknown unit",
        {"event": "Open", "within": {"last": 3, "unit": "fortnight"}},
        "$.within.unit",
        "unknown unit 'fortnight'",
    ),
    (
        "bad count operator",
        {"any": [{"event": "Open", "count": {"op": "~", "value": 1}}]},
        "$.any[0].count.op",
        "unknown count operator",
    ),
    (
        "negative count",
        {"event": "Open", "count": {"op": ">=", "value": -1}},
        "$.count.value",
        "whole number",
    ),
    (
        "unknown key",
        {"property": "plan", "op": "equals", "value": "x", "extra": 1},
        "$.extra",
        "unknown key",
    ),
    ("empty group", {"all": []}, "$.all", "non-empty list"),
    ("not an object", {"not": "plan"}, "$.not", "expected an object"),
    (
        "bad date",
        {"event": "Open", "within": {"between": ["2026-13-01", "2026-12-01"]}},
        "$.within.between[0]",
        "YYYY-MM-DD",
    ),
    ("missing cohort", {"all": [{"in_cohort": 999}]}, "$.all[0].in_cohort", "does not exist"),
]


@pytest.mark.parametrize("case", BAD_DEFINITIONS, ids=[c[0] for c in BAD_DEFINITIONS])
def test_bad_definitions_name_the_json_path(
    api: httpx.Client, project: Project, case: tuple[str, dict[str, Any], str, str]
) -> None:
    _, definition, path, message = case
    response = api.post(
        f"/api/v1/projects/{project.id}/cohorts", json={"name": "bad", "definition": definition}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["path"] == path
    assert message in error["message"]


def test_cycles_are_refused(api: httpx.Client, project: Project) -> None:
    base = f"/api/v1/projects/{project.id}/cohorts"
    a = api.post(base, json={"name": "A", "definition": {"event": "Purchase"}}).json()
    b = api.post(base, json={"name": "B", "definition": {"in_cohort": a["id"]}}).json()
    c = api.post(base, json={"name": "C", "definition": {"not": {"in_cohort": b["id"]}}}).json()
    cycle = api.put(
        f"{base}/{a['id']}",
        json={"definition": {"any": [{"event": "Purchase"}, {"in_cohort": c["id"]}]}},
    )
    assert cycle.status_code == 400
    assert cycle.json()["error"]["path"] == "$.any[1].in_cohort"
    assert "cycle" in cycle.json()["error"]["message"]
    itself = api.put(f"{base}/{a['id']}", json={"definition": {"in_cohort": a["id"]}})
    assert itself.status_code == 400


def test_members_of_other_projects_cannot_see_cohorts(
    api: httpx.Client, live_server: LiveServer, engine: Engine, project: Project
) -> None:
    other = ProjectService(engine, SystemClock()).create("Other")
    people = accounts(engine)
    people.create_user("m@x.io", "long enough", Role.MEMBER, other.id)
    token = people.create_token("m@x.io")
    cohort = api.post(
        f"/api/v1/projects/{project.id}/cohorts",
        json={"name": "A", "definition": {"event": "Purchase"}},
    ).json()
    with live_server.client(headers={"Authorization": f"Bearer {token}"}) as outsider:
        assert (
            outsider.get(f"/api/v1/projects/{project.id}/cohorts/{cohort['id']}").status_code == 404
        )
        assert (
            outsider.get(f"/api/v1/projects/{other.id}/cohorts/{cohort['id']}").status_code == 404
        )
