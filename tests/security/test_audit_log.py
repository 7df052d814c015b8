"""The audit log (issue 15, finding 10; R-OBS-1, SPEC §11 ``GET …/audit-log``): the actions
recorded with their actor, target and redacted details; admins only; newest first, a page at a
time; and the Audit log page."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from cohortsync.clock import SystemClock
from cohortsync.domain.accounts import Project, Role
from cohortsync.domain.audit import AuditQuery
from cohortsync.keyring import Keyring, generate_key
from cohortsync.redaction import register
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.services import webhook_secrets
from cohortsync.services.integrations import IntegrationService
from cohortsync.services.mtu import MtuReports
from cohortsync.services.projects import ProjectService
from cohortsync.storage.audit_store import AuditStore
from cohortsync.storage.database import write_transaction
from tests.conftest import NOW, LiveServer
from tests.helpers import accounts, admin_token
from tests.sync.test_api import (
    connect,
    create_cohort,
    engage,
    export,
    run_now,
    syncs_url,
    wait_for,
)

ADMIN = "admin@example.com"
MEMBER = "member@example.com"
PASSWORD = "correct horse battery"
PRO = {"property": "plan", "op": "equals", "value": "pro"}


def log_url(project: Project) -> str:
    return f"/api/v1/projects/{project.id}/audit-log"


@pytest.fixture
def admin(live_server: LiveServer, project: Project) -> httpx.Client:
    token = admin_token(live_server.engine, project.id, ADMIN)
    return live_server.client(headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def member(live_server: LiveServer, project: Project) -> httpx.Client:
    people = accounts(live_server.engine)
    people.create_user(MEMBER, PASSWORD, Role.MEMBER, project.id)
    token = people.create_token(MEMBER)
    return live_server.client(headers={"Authorization": f"Bearer {token}"})


def entries(api: httpx.Client, project: Project, **params: Any) -> list[dict[str, Any]]:
    reply = api.get(log_url(project), params={"limit": 500, **params})
    assert reply.status_code == 200, reply.text
    found: list[dict[str, Any]] = reply.json()
    return found


def one(found: list[dict[str, Any]], action: str) -> dict[str, Any]:
    matching = [e for e in found if e["action"] == action]
    assert len(matching) == 1, (action, [e["action"] for e in found])
    return matching[0]


def test_admin_actions_are_recorded_with_actor_target_and_redacted_details(
    live_server: LiveServer,
    project: Project,
    admin: httpx.Client,
    member: httpx.Client,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    engine = live_server.engine
    pros = {f"p{n}": {"plan": "pro"} for n in range(10)}
    engage(live_server, project, pros)
    integration_id = connect(admin, project, sandboxes["webhook"])
    cohort_id = create_cohort(admin, project, "Pro", PRO)
    sync = export(admin, project, cohort_id, integration_id, "dynamic")
    assert run_now(admin, project, sync["id"])["status"] == "succeeded"
    engage(live_server, project, {user: {"plan": "free"} for user in pros})
    blocked = run_now(admin, project, sync["id"])  # all ten would leave the list
    assert blocked["status"] == "blocked"
    confirmed = admin.post(syncs_url(project, f"/{sync['id']}/confirm"))
    assert confirmed.status_code == 202, confirmed.text
    assert wait_for(admin, project, sync["id"], confirmed.json()["id"])["status"] == "succeeded"
    assert admin.delete(syncs_url(project, f"/{sync['id']}")).status_code == 200
    # on the command line: the project's API secret and the MTU exemption list
    api_secret = ProjectService(engine, SystemClock()).rotate_api_secret(project.id)
    MtuReports(engine).add_exemption("iterable", "audit-check")
    MtuReports(engine).remove_exemption("iterable", "audit-check")

    found = entries(admin, project)
    assert [e["id"] for e in found] == sorted((e["id"] for e in found), reverse=True)
    exported = one(found, "sync.export")
    assert (exported["actor"], exported["target"]) == (ADMIN, f"sync:{sync['id']}")
    assert exported["details"]["mode"] == "dynamic"
    assert exported["details"]["cohort_id"] == cohort_id
    runs = [e for e in found if e["action"] == "sync.run"]
    assert [(e["actor"], e["target"]) for e in runs] == [(ADMIN, f"sync:{sync['id']}")] * 2
    assert {e["details"]["run_id"] for e in runs} >= {blocked["id"]}
    confirm = one(found, "sync.confirm_blocked_run")
    assert confirm["actor"] == ADMIN
    assert confirm["target"] == f"sync:{sync['id']}/run:{blocked['id']}"
    stopped = one(found, "sync.stop")
    assert (stopped["actor"], stopped["target"]) == (ADMIN, f"sync:{sync['id']}")
    rotated = one(found, "project.rotate_secret")
    assert (rotated["actor"], rotated["target"]) == ("cli", f"project:{project.id}")
    assert {"id", "at", "actor", "action", "target", "details"} <= set(exported)
    assert not any(e["action"].startswith("mtu.") for e in found)  # outside any project

    everything = entries(admin, project, scope="all")
    added, removed = one(everything, "mtu.exemption.add"), one(everything, "mtu.exemption.remove")
    for entry in (added, removed):
        assert entry["actor"] == "cli" and entry["project_id"] is None
        assert entry["target"] == "exemption:iterable/audit-check"
        assert entry["details"] == {"source": "iterable", "event": "audit-check"}

    refused = member.get(log_url(project))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert member.get(log_url(project), params={"scope": "all"}).status_code == 403
    stranger = live_server.client()
    assert stranger.get(log_url(project)).status_code == 401
    reply = admin.get(log_url(project), params={"scope": "all", "limit": 500})
    assert api_secret not in reply.text


def test_webhook_secret_rotation_is_recorded_without_the_secret(
    engine: Engine, project: Project, sandboxes: dict[str, RunningSandbox]
) -> None:
    keyring = Keyring([generate_key()])
    people = accounts(engine)
    user = people.create_user(ADMIN, PASSWORD, Role.ADMIN, project.id)
    service = IntegrationService(
        engine, keyring, SystemClock(), allow_custom_endpoints=True, allow_private_endpoints=True
    )
    body = sandboxes["iterable"].integration()
    made = service.connect(project.id, "iterable", body["credentials"], body["settings"])
    now = SystemClock().now()
    with write_transaction(engine) as connection:
        secret, until = webhook_secrets.rotate(
            connection, keyring, made.id, now, timedelta(hours=2), user_id=user.id
        )
    with write_transaction(engine) as connection:
        found = AuditStore(connection).entries(AuditQuery(project.id, action="webhook_secret."))
    (entry,) = found
    assert (entry.actor, entry.target) == (ADMIN, f"integration:{made.id}")
    assert until is not None  # the integration had a secret: the previous one overlaps
    assert entry.detail == {"partner_key": False, "previous_valid_until": until.isoformat()}
    assert secret not in repr(entry)


def record(
    engine: Engine, project_id: int | None, action: str, days_ago: int, **detail: Any
) -> None:
    with write_transaction(engine) as connection:
        AuditStore(connection).record(
            project_id=project_id,
            user_id=None,
            action=action,
            target=f"thing:{days_ago}",
            detail=detail,
            at=NOW - timedelta(days=days_ago),
            actor="cli",
        )


def test_pages_filters_and_masked_secrets(
    live_server: LiveServer, project: Project, admin: httpx.Client
) -> None:
    engine = live_server.engine
    other = ProjectService(engine, SystemClock()).create("Other")
    for days_ago in range(6, -1, -1):  # oldest first: ids grow as time goes on
        record(engine, project.id, "cohort.update" if days_ago % 2 else "sync.stop", days_ago)
    record(engine, None, "keys.rotate", 0)
    record(engine, other.id, "sync.stop", 0)
    late = "SENTINEL-AUDIT-late-3b1f"  # a secret the process learns after it was recorded
    record(engine, project.id, "sync.export", 0, note=f"sent {late}", password="hunter2-hunter2")
    register([late])

    first = admin.get(log_url(project), params={"limit": 3})
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page) == 3
    assert page[0]["details"] == {"note": "sent ***", "password": "***"}
    assert late not in first.text and "hunter2" not in first.text
    link = first.headers["link"]
    following = re.fullmatch(r'<(.+)>; rel="next"', link)
    assert following is not None
    assert f"before={page[-1]['id']}" in following.group(1)
    seen = [e["id"] for e in page]
    while "link" in first.headers:
        first = admin.get(re.fullmatch(r"<(.+)>; .*", first.headers["link"]).group(1))  # type: ignore[union-attr]
        seen += [e["id"] for e in first.json()]
    everything = entries(admin, project)  # one page of 500
    assert seen == [e["id"] for e in everything] == sorted(set(seen), reverse=True)
    mine = [e for e in everything if e["target"].startswith("thing:")]
    assert len(mine) == 8  # this project's, none of the other project's or the global one

    stops = entries(admin, project, action="sync.")
    assert {e["action"] for e in stops} == {"sync.stop", "sync.export"}
    assert len(stops) == 5
    day = (NOW - timedelta(days=2)).date().isoformat()
    assert [e["target"] for e in entries(admin, project, **{"from": day, "to": day})] == ["thing:2"]
    since = {e["target"] for e in entries(admin, project, **{"from": day})}
    assert {t for t in since if t.startswith("thing:")} == {"thing:2", "thing:1", "thing:0"}
    with_global = entries(admin, project, scope="all", action="keys.")
    assert [(e["action"], e["project_id"]) for e in with_global] == [("keys.rotate", None)]

    for params, words in (
        ({"limit": 0}, "limit"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-11-10", "to": "2026-11-01"}, "'to'"),
        ({"scope": "everything"}, "scope"),
        ({"before": "x"}, "before"),
        ({"before": 2**63}, "before"),
    ):
        bad = admin.get(log_url(project), params=params)
        assert 400 <= bad.status_code < 500, (params, bad.text)
        assert words in bad.json()["error"]["message"], bad.text


def sign_in(server: LiveServer, email: str) -> httpx.Client:
    client = server.client()
    answer = client.post("/login", data={"email": email, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return client


def test_the_audit_page_is_for_admins_and_pages_back(
    live_server: LiveServer, project: Project
) -> None:
    people = accounts(live_server.engine)
    people.create_user(ADMIN, PASSWORD, Role.ADMIN, project.id)
    people.create_user(MEMBER, PASSWORD, Role.MEMBER, project.id)
    for days_ago in range(60, -1, -1):
        record(live_server.engine, project.id, "cohort.update", days_ago, name=f"c{days_ago}")
    page_url = f"/projects/{project.id}/audit"

    as_admin = sign_in(live_server, ADMIN)
    cohorts = as_admin.get(f"/projects/{project.id}/cohorts")
    assert f'href="{page_url}"' in cohorts.text  # in the navigation
    first = as_admin.get(page_url, params={"action": "cohort."})
    assert first.status_code == 200
    assert first.text.count('data-testid="audit-entry"') == 50
    assert "name: c0<" in first.text and "name: c50<" not in first.text
    older = re.search(r'href="(\?[^"]*before=\d+[^"]*)" rel="next"', first.text)
    assert older is not None
    second = as_admin.get(page_url + html.unescape(older.group(1)))
    assert second.text.count('data-testid="audit-entry"') == 11  # the filter is kept
    assert "name: c60<" in second.text and 'rel="next"' not in second.text
    filtered = as_admin.get(page_url, params={"action": "sync."})
    assert 'data-testid="audit-entry"' not in filtered.text

    as_member = sign_in(live_server, MEMBER)
    assert f'href="{page_url}"' not in as_member.get(f"/projects/{project.id}/cohorts").text
    assert as_member.get(page_url).status_code == 403
