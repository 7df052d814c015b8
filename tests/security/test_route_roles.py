"""Every write route of the app (API, ingestion, webhooks and the web pages' POSTs), tried
anonymously, as a member of the project and as an admin of another project: each is refused as
the table below says, never with a 2xx it should not give and never with a 5xx.

The table is explicit on purpose: a write route added to the app without a row here fails
``test_every_write_route_has_a_row``, so whoever adds one decides who may call it. Who may
write follows SPEC §11: integrations, syncs, explain, audit and alerts are written by admins
only; cohorts by any member of the project (a cohort that feeds an active export is the
admin's: that rule is tested where it is built, so here a member writes a cohort nobody
exports); the ingestion endpoints and ``/webhooks/{id}`` take their own credentials (a project
token, API secret or service account; the integration's webhook secret), never a person's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from cohortsync.web.pages import PageRoute
from tests.security.conftest import ADMIN, PERSON, Caller, SecurityWorld
from tests.sync.test_api import PRO

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CALLERS = ("anonymous", "member", "other_admin")


class Guard(Enum):
    """Who may call a write route."""

    ADMIN = "the project's admins"
    MEMBER = "any member of the project"
    SIGNED_IN = "anyone signed in"
    PUBLIC = "anyone (a sign-in form)"
    INGESTION = "a project token, API secret or service account, never a person's token"
    WEBHOOK = "the integration's webhook secret, never a person's token"


Body = Callable[[SecurityWorld], dict[str, Any]]


def nothing(_world: SecurityWorld) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Row:
    """A write route: who may call it, and what a caller who may sends (so that a refusal
    comes from the role check, not from a malformed request)."""

    guard: Guard
    body: Body = nothing
    fresh_cohort: bool = field(default=False)  # a member's write gets a cohort of its own


def _event(_world: SecurityWorld) -> dict[str, Any]:
    """One valid event, profile or group update that lacks only its credentials."""
    return {"json": [{"event": "Signed up", "properties": {"distinct_id": PERSON, "time": 1}}]}


def _engage(_world: SecurityWorld) -> dict[str, Any]:
    return {"json": [{"$distinct_id": PERSON, "$set": {"plan": "pro"}}]}


def _group(_world: SecurityWorld) -> dict[str, Any]:
    return {"json": [{"$group_key": "company", "$group_id": "acme", "$set": {"size": 3}}]}


def _webhook(_world: SecurityWorld) -> dict[str, Any]:
    fields = {"createdAt": "2026-11-23 12:00:00 +00:00"}
    return {"json": {"email": "ana@example.com", "eventName": "emailOpen", "dataFields": fields}}


def _cohort(_world: SecurityWorld) -> dict[str, Any]:
    return {"json": {"name": "Made in the role matrix", "definition": PRO}}


def _static_cohort(_world: SecurityWorld) -> dict[str, Any]:
    return {"json": {"name": "Static, role matrix", "distinct_ids": [PERSON]}}


def _rename(_world: SecurityWorld) -> dict[str, Any]:
    return {"json": {"name": "Renamed in the role matrix"}}


def _integration(world: SecurityWorld) -> dict[str, Any]:
    return {"json": world.sandbox.integration()}


def _pair(world: SecurityWorld) -> dict[str, Any]:
    return {"json": {"cohort_id": world.cohort_id, "integration_id": world.integration_id}}


def _export(world: SecurityWorld) -> dict[str, Any]:
    return {"json": {**_pair(world)["json"], "mode": "dynamic"}}


def _login_form(_world: SecurityWorld) -> dict[str, Any]:
    # no password: answered without hashing one (the sign-in throttle is tested elsewhere)
    return {"data": {"email": ADMIN}}


def _login_json(_world: SecurityWorld) -> dict[str, Any]:
    return {"json": {"email": ADMIN}}


def _connect_form(world: SecurityWorld) -> dict[str, Any]:
    integration = world.sandbox.integration()
    return {"data": {**integration["credentials"], **integration["settings"]}}


def _builder_form(_world: SecurityWorld) -> dict[str, Any]:
    condition = {"c.group": "g", "c.kind": "property", "c.property": "plan", "c.value": "pro"}
    return {
        "data": {"name": "Built in the role matrix", "group": "g", "condition": "c", **condition}
    }


def _csv_upload(_world: SecurityWorld) -> dict[str, Any]:
    csv = f"distinct_id\n{PERSON}\n".encode()
    return {"data": {"name": "Uploaded in the role matrix"}, "files": {"file": ("m.csv", csv)}}


def _export_form(_world: SecurityWorld) -> dict[str, Any]:
    return {"data": {"mode": "dynamic"}}


P = "/api/v1/projects/{project_id}"
W = "/projects/{project_id}"
EXPECTED: dict[tuple[str, str], Row] = {
    # ingestion (SPEC §3): credentials in the records or in Basic auth
    ("POST", "/track"): Row(Guard.INGESTION, _event),
    ("POST", "/track/"): Row(Guard.INGESTION, _event),
    ("POST", "/engage"): Row(Guard.INGESTION, _engage),
    ("POST", "/engage/"): Row(Guard.INGESTION, _engage),
    ("POST", "/groups"): Row(Guard.INGESTION, _group),
    ("POST", "/groups/"): Row(Guard.INGESTION, _group),
    ("POST", "/import"): Row(Guard.INGESTION, _event),
    # partner events in (R-EVT-2)
    ("POST", "/webhooks/{integration_id}"): Row(Guard.WEBHOOK, _webhook),
    # people
    ("POST", "/api/v1/login"): Row(Guard.PUBLIC, _login_json),
    # cohorts: any member
    ("POST", f"{P}/cohorts"): Row(Guard.MEMBER, _cohort),
    ("POST", f"{P}/cohorts/static"): Row(Guard.MEMBER, _static_cohort),
    ("PUT", f"{P}/cohorts/{{cohort_id}}"): Row(Guard.MEMBER, _rename, fresh_cohort=True),
    ("DELETE", f"{P}/cohorts/{{cohort_id}}"): Row(Guard.MEMBER, fresh_cohort=True),
    # integrations: admin only to write
    ("POST", f"{P}/integrations"): Row(Guard.ADMIN, _integration),
    ("PUT", f"{P}/integrations/{{integration_id}}"): Row(Guard.ADMIN, _rename),
    ("DELETE", f"{P}/integrations/{{integration_id}}"): Row(Guard.ADMIN),
    ("POST", f"{P}/integrations/{{integration_id}}/webhook-secret"): Row(Guard.ADMIN),
    # syncs: admin only to write; a preview sends and stores nothing (a read sent as POST)
    ("POST", f"{P}/syncs/preview"): Row(Guard.MEMBER, _pair),
    ("POST", f"{P}/syncs"): Row(Guard.ADMIN, _export),
    ("POST", f"{P}/syncs/{{sync_id}}/run"): Row(Guard.ADMIN),
    ("POST", f"{P}/syncs/{{sync_id}}/confirm"): Row(Guard.ADMIN),
    ("DELETE", f"{P}/syncs/{{sync_id}}"): Row(Guard.ADMIN),
    # web pages
    ("POST", "/login"): Row(Guard.PUBLIC, _login_form),
    ("POST", "/logout"): Row(Guard.SIGNED_IN),
    ("POST", f"{W}/integrations/connect/{{kind}}"): Row(Guard.ADMIN, _connect_form),
    ("POST", f"{W}/integrations/{{integration_id}}/disconnect"): Row(Guard.ADMIN),
    ("POST", f"{W}/integrations/{{integration_id}}/webhook-secret"): Row(Guard.ADMIN),
    ("POST", f"{W}/cohorts/count"): Row(Guard.MEMBER, _builder_form),
    ("POST", f"{W}/cohorts"): Row(Guard.MEMBER, _builder_form),
    ("POST", f"{W}/cohorts/static"): Row(Guard.MEMBER, _csv_upload),
    ("POST", f"{W}/cohorts/{{cohort_id}}/delete"): Row(Guard.MEMBER, fresh_cohort=True),
    ("POST", f"{W}/cohorts/{{cohort_id}}/export/{{integration_id}}"): Row(
        Guard.ADMIN, _export_form
    ),
    ("POST", f"{W}/syncs/{{sync_id}}/run"): Row(Guard.ADMIN),
    ("POST", f"{W}/syncs/{{sync_id}}/reconcile"): Row(Guard.ADMIN),
    ("POST", f"{W}/syncs/{{sync_id}}/stop"): Row(Guard.ADMIN),
    ("POST", f"{W}/syncs/{{sync_id}}/confirm"): Row(Guard.ADMIN),
}

# Refusals the service does not give yet: (method, path, caller) -> what is wrong. Each is a
# strict xfail: fixing the route makes it pass, and then the entry must go.
KNOWN_BUGS: dict[tuple[str, str, str], str] = {}


def write_routes(world: SecurityWorld) -> dict[tuple[str, str], bool]:
    """Every (method, path) of the app that writes, with whether it is a web page."""
    found: dict[tuple[str, str], bool] = {}
    for route in iter_route_contexts(world.app.routes):
        path = route.path
        if path is None:
            continue
        for method in sorted((route.methods or set()) & WRITES):
            found[(method, path)] = isinstance(route.original_route, PageRoute)
    return found


def test_every_write_route_has_a_row(security_world: SecurityWorld) -> None:
    routes = set(write_routes(security_world))
    missing = sorted(routes - set(EXPECTED))
    stale = sorted(set(EXPECTED) - routes)
    assert not missing, (
        f"write routes without a row in EXPECTED (decide who may call them): {missing}"
    )
    assert not stale, f"rows in EXPECTED for routes the app no longer has: {stale}"


def _path(world: SecurityWorld, template: str, row: Row, caller: str) -> str:
    cohort_id = world.cohort_id
    if row.fresh_cohort:
        cohort_id = world.new_cohort(f"For {caller}, {template.rsplit('/', 1)[-1]}")
    names = {
        "project_id": world.project.id,
        "cohort_id": cohort_id,
        "integration_id": world.integration_id,
        "sync_id": world.sync_id,
        "kind": world.sandbox.partner,
    }
    return template.format(**names)


def _to_login(reply: httpx.Response) -> bool:
    return reply.status_code in (302, 303, 307) and reply.headers["location"].startswith("/login")


def _refused_anonymously(reply: httpx.Response, page: bool) -> bool:
    if page:
        return _to_login(reply) or reply.status_code in (401, 403)
    return reply.status_code == 401


def _allowed(reply: httpx.Response) -> bool:
    return reply.status_code < 400 and not _to_login(reply)


def _signed_out(world: SecurityWorld, caller: Caller, reply: httpx.Response) -> bool:
    """Sign-out succeeded: the browser goes to the login page and the token no longer works."""
    assert caller.token is not None
    return _to_login(reply) and world.accounts.user_for_token(caller.token) is None


def expected(
    world: SecurityWorld, row: Row, caller: Caller, page: bool, reply: httpx.Response
) -> bool:
    """Whether ``reply`` is what ``caller`` should get from a route guarded by ``row``."""
    status = reply.status_code
    if row.guard is Guard.PUBLIC:
        return status < 500
    if row.guard in (Guard.INGESTION, Guard.WEBHOOK):
        return status in (401, 403)
    if caller.name == "anonymous":
        return _refused_anonymously(reply, page)
    if row.guard is Guard.SIGNED_IN:
        return _signed_out(world, caller, reply)
    if caller.name == "member":
        return status == 403 if row.guard is Guard.ADMIN else _allowed(reply)
    return status in (403, 404)  # an admin of another project


@pytest.mark.parametrize("caller_name", CALLERS)
@pytest.mark.parametrize(
    ("method", "template"), [pytest.param(*key, id=" ".join(key)) for key in EXPECTED]
)
def test_write_route_refuses_who_may_not_call_it(
    security_world: SecurityWorld,
    request: pytest.FixtureRequest,
    method: str,
    template: str,
    caller_name: str,
) -> None:
    world = security_world
    known = KNOWN_BUGS.get((method, template, caller_name))
    if known is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=known))
    row = EXPECTED[(method, template)]
    page = write_routes(world)[(method, template)]
    caller = world.callers[caller_name]
    if row.guard is Guard.SIGNED_IN:
        caller = world.fresh_token(caller)  # signing out revokes it
    url = _path(world, template, row, caller_name)
    with world.client(caller) as client:
        reply = client.request(method, url, **row.body(world))
    what = f"{method} {url} as {caller_name} ({row.guard.value} may): {reply.status_code}"
    assert reply.status_code < 500, f"{what} {reply.text[:300]}"
    assert expected(world, row, caller, page, reply), f"{what} {reply.text[:300]}"
