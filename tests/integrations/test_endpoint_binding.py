"""Credentials stay with the endpoint they were entered for (issue 15, finding 2), URLs carry no
credentials (finding 11), members never read a partner's reply (finding 1), and every change
of an integration is audited."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from cohortsync.domain.accounts import Project
from cohortsync.logs import configure_logging
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.sandbox.server import RunningServer, start
from cohortsync.services.integrations import MEMBER_ERROR
from cohortsync.storage.database import read_transaction, write_transaction
from cohortsync.storage.integration_store import IntegrationStore
from cohortsync.storage.tables import audit_log
from cohortsync.web.session import COOKIE, CSRF_HEADER, csrf_for
from tests.conftest import LiveServer
from tests.helpers import admin_token
from tests.integrations.test_api import member_token
from tests.loopback import Listener

ADMIN, ADMIN_PASSWORD = "binding-admin@example.com", "correct horse battery"  # admin_token's
MEMBER, MEMBER_PASSWORD = "analyst@example.com", "correct horse battery"  # member_token's


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as made:
        yield made


@pytest.fixture
def api(live_server: LiveServer, project: Project) -> httpx.Client:
    token = admin_token(live_server.engine, project.id, ADMIN)
    return live_server.client(headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def member(live_server: LiveServer, project: Project) -> httpx.Client:
    token = member_token(live_server, project)
    return live_server.client(headers={"Authorization": f"Bearer {token}"})


def base(project: Project) -> str:
    return f"/api/v1/projects/{project.id}/integrations"


def connected(api: httpx.Client, project: Project, body: dict[str, Any]) -> str:
    reply = api.post(base(project), json=body)
    assert reply.status_code == 201, reply.text
    assert reply.json()["status"] == "connected", reply.text
    return f"{base(project)}/{reply.json()['id']}"


def test_a_new_url_without_the_credentials_is_refused_and_sends_them_nowhere(
    api: httpx.Client,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
    listener: Listener,
) -> None:
    sandbox = sandboxes["webhook"]
    item = connected(api, project, sandbox.integration())
    moved = api.put(item, json={"settings": {"url": listener.url}})
    assert moved.status_code == 400
    message = moved.json()["error"]["message"]
    assert "changing settings.url" in message
    assert "enter the credentials again (credentials.username, credentials.password)" in message
    assert listener.connections() == 0
    assert api.get(item).json()["settings"]["url"] == sandbox.base_url  # nothing changed

    root = sandbox.server.url + "/"  # the emulator answers the protocol at / too
    again = {"settings": {"url": root}, "credentials": dict(sandbox.state.credentials)}
    accepted = api.put(item, json=again)
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["status"], accepted.json()["settings"]["url"]) == (
        "connected",
        sandbox.server.url,
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [({"base_url": "http://127.0.0.1:9"}, "base_url"), ({"region": "eu"}, "region")],
)
def test_a_new_base_url_or_region_needs_the_key_again(
    api: httpx.Client,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
    change: dict[str, str],
    named: str,
) -> None:
    item = connected(api, project, sandboxes["iterable"].integration())
    refused = api.put(item, json={"settings": change, "name": "renamed"})
    assert refused.status_code == 400
    assert f"changing settings.{named}" in refused.json()["error"]["message"]
    assert "credentials.api_key" in refused.json()["error"]["message"]
    assert api.get(item).json()["name"] == "Iterable"
    renamed = api.put(item, json={"name": "renamed"})  # the endpoint unchanged: no credentials
    assert renamed.json()["name"] == "renamed"


CARRYING = [
    ("http://bob:pa55word@{host}/cohorts", "a user name or password"),
    ("http://bob@{host}/cohorts", "a user name or password"),
    ("http://{host}/cohorts?api_key=k3y", "a secret in its query string (api_key=…)"),
    ("http://{host}/cohorts?token=t0ken", "a secret in its query string (token=…)"),
    ("http://{host}/cohorts?page=2&X-Signature=s1g", "(X-Signature=…)"),
    ("http://{host}/cohorts?access_token=t", "(access_token=…)"),
    ("http://{host}/cohorts?page=2;token=t0ken", "a secret in its query string (token=…)"),
    ("http://{host}/cohorts;token=t0ken/list", "a secret in its path (;token=…)"),
    ("http://{host}/cohorts?jwt=eyJ", "(jwt=…)"),
    ("http://{host}/cohorts?bearer=b", "(bearer=…)"),
    ("http://{host}/cohorts?auth=a", "(auth=…)"),
    ("http://{host}/cohorts#token=t0ken", "a fragment (#…)"),
    ("http://{host}/cohorts#", "a fragment (#…)"),
]


def test_a_url_carrying_credentials_is_refused_at_connect(
    api: httpx.Client, project: Project, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["webhook"]
    host = sandbox.server.url.split("://", 1)[1]
    for url, carried in CARRYING:
        body = {"type": "webhook", "settings": {"url": url.format(host=host)}}
        reply = api.post(base(project), json=body)
        assert reply.status_code == 400, url
        message = reply.json()["error"]["message"]
        assert message.startswith("settings.url carries "), message
        assert carried in message
        assert "credential fields" in message
    assert api.get(base(project)).json() == []
    paged = {**sandbox.integration(), "settings": {"url": f"http://{host}/cohorts?page=2"}}
    assert api.post(base(project), json=paged).json()["status"] == "connected"


def test_a_stored_url_with_credentials_is_shown_masked(
    api: httpx.Client,
    member: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sandbox = sandboxes["webhook"]
    plain = api.post(base(project), json={**sandbox.integration(), "credentials": {}})
    item = f"{base(project)}/{plain.json()['id']}"
    host = sandbox.server.url.split("://", 1)[1]
    stored = f"http://bob:pa55word@{host}/cohorts;sig=s1g/x?page=2&token=t0ken;jwt=j#t0ken"
    with write_transaction(live_server.engine) as connection:  # kept before the rule
        IntegrationStore(connection).update(plain.json()["id"], {"settings": {"url": stored}})
    masked = f"http://***@{host}/cohorts;sig=***/x?page=2&token=***;jwt=***#***"
    for client, expected in ((api, masked), (member, f"http://{host}/…")):
        for shown in (client.get(item).json(), client.get(base(project)).json()[0]):
            assert shown["settings"]["url"] == expected


def test_members_see_only_the_scheme_and_host_of_a_webhook_url(
    api: httpx.Client, member: httpx.Client, project: Project, sandboxes: dict[str, RunningSandbox]
) -> None:
    host = sandboxes["webhook"].server.url.split("://", 1)[1]
    url = f"http://{host}/services/T000/B000/XXXXSECRET"  # a token in the path, as Slack's
    made = api.post(base(project), json={"type": "webhook", "settings": {"url": url}})
    assert made.status_code == 201, made.text  # saved (the emulator knows no such path)
    item = f"{base(project)}/{made.json()['id']}"
    assert api.get(item).json()["settings"]["url"] == url
    assert member.get(item).json()["settings"]["url"] == f"http://{host}/…"
    assert "XXXXSECRET" not in member.get(base(project)).text
    member.cookies.set(COOKIE, member.headers["Authorization"].split(" ", 1)[1])
    page = member.get(f"/projects/{project.id}/integrations")
    assert page.status_code == 200
    assert "XXXXSECRET" not in page.text


def test_http_client_loggers_do_not_log_urls_at_info() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("INFO")
        for name in ("httpx", "httpcore"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO)
        assert logging.getLogger("cohortsync").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.fixture
def careless_partner() -> Iterator[RunningServer]:
    """A server answering every call with a page of its own."""

    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse("<h1>internal admin console</h1>", status_code=403)

    server = start(Starlette(routes=[Route("/{path:path}", page, methods=["GET", "POST"])]))
    yield server
    server.stop()


def test_no_reply_body_is_shown_and_members_read_no_partner_words(
    api: httpx.Client,
    member: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
    careless_partner: RunningServer,
) -> None:
    hook = api.post(
        base(project), json={"type": "webhook", "settings": {"url": careless_partner.url}}
    )
    assert hook.json()["status"] == "error"
    assert hook.json()["error"] == "Webhook refused the credentials: HTTP 403"
    wrong = sandboxes["iterable"].integration()
    wrong["credentials"] = {"api_key": "not-the-key"}
    refused = api.post(base(project), json=wrong)
    assert "BadApiKey" in refused.json()["error"]  # the partner's own words, for admins
    for shown in member.get(base(project)).json():
        assert shown["status"] == "error"
        assert shown["error"] == MEMBER_ERROR
    assert member.get(f"{base(project)}/{refused.json()['id']}").json()["error"] == MEMBER_ERROR
    admin_view = api.get(f"{base(project)}/{refused.json()['id']}").json()
    assert admin_view["error"] == refused.json()["error"]
    with live_server.client() as browser:  # the Integrations page, as the member sees it
        signed = browser.post("/login", data={"email": MEMBER, "password": MEMBER_PASSWORD})
        assert signed.status_code == 303
        page = browser.get(f"/projects/{project.id}/integrations").text
    assert MEMBER_ERROR in page
    assert "BadApiKey" not in page and "HTTP 403" not in page  # (a CSRF token may hold 403)


def test_connect_update_and_disconnect_are_audited_without_secrets(
    api: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sandbox = sandboxes["webhook"]
    item = connected(api, project, {**sandbox.integration(), "name": "Hook"})
    secrets = list(sandbox.state.credentials.values())
    again = {"settings": {"export_properties": ["plan"]}, "credentials": sandbox.state.credentials}
    assert api.put(item, json=again).status_code == 200
    assert api.delete(item).status_code == 200
    with read_transaction(live_server.engine) as connection:
        rows = connection.execute(
            sa.select(audit_log).where(audit_log.c.action.startswith("integration."))
        ).all()
    target = f"integration:{item.rsplit('/', 1)[1]}"
    assert [(r.action, r.target, r.actor, r.project_id) for r in rows] == [
        ("integration.connect", target, ADMIN, project.id),
        ("integration.update", target, ADMIN, project.id),
        ("integration.delete", target, ADMIN, project.id),
    ]
    assert rows[0].detail == {
        "type": "webhook",
        "name": "Hook",
        "settings": ["list_name_template", "url"],
        "status": "connected",
    }
    assert rows[1].detail["settings"] == ["export_properties"]
    assert rows[1].detail["reauthorized"] is True
    assert rows[2].detail == {"type": "webhook", "name": "Hook"}
    assert not any(secret in repr(rows) for secret in secrets)


def test_a_webhook_secret_rotated_on_the_page_is_audited_with_its_admin(
    api: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    item = connected(api, project, sandboxes["iterable"].integration())
    with live_server.client() as browser:
        signed = browser.post("/login", data={"email": ADMIN, "password": ADMIN_PASSWORD})
        assert signed.status_code == 303
        csrf = {CSRF_HEADER: csrf_for(browser.cookies[COOKIE]), "HX-Request": "true"}
        page_path = item.replace(f"/api/v1/projects/{project.id}", f"/projects/{project.id}")
        rotated = browser.post(f"{page_path}/webhook-secret", headers=csrf)
        assert rotated.status_code == 200, rotated.text
    with read_transaction(live_server.engine) as connection:
        rows = connection.execute(
            sa.select(audit_log).where(audit_log.c.action == "webhook_secret.rotate")
        ).all()
    assert [(r.actor, r.target) for r in rows] == [(ADMIN, f"integration:{item.rsplit('/', 1)[1]}")]
