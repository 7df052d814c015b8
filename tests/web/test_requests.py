"""The web UI over plain HTTP (no browser): malformed requests, sessions, origins, limits, and
what one project's people may see of another's."""

from __future__ import annotations

import html
import json
import logging
import re
from datetime import timedelta

import httpx
import orjson
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from starlette.types import Message

from cohortsync.app import create_app
from cohortsync.clock import FrozenClock
from cohortsync.domain.accounts import Project
from cohortsync.partners.xtremepush.outreach import xtremepush_webhook
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.sandbox.outreach import partner_headers
from cohortsync.services.cohorts import CohortService
from cohortsync.services.projects import ProjectService
from cohortsync.settings import Settings
from cohortsync.storage.database import write_transaction
from cohortsync.storage.tables import integrations
from cohortsync.web.routes.cohorts import MAX_UPLOAD_BYTES
from cohortsync.web.session import COOKIE
from tests.conftest import NOW, TEST_KEY, LiveServer
from tests.helpers import admin_token, run_async
from tests.sync.test_api import PRO, connect, create_cohort, engage, export
from tests.web.conftest import (
    ADMIN,
    MEMBER,
    PASSWORD,
    SQLITE_ONLY,
    Signed,
    in_process,
    sign_in_http,
)

pytestmark = SQLITE_ONLY

SENTINEL = "sentinel-password-" + "s" * 1100  # longer than the login form accepts


def test_malformed_requests_get_400_naming_the_fields_and_nothing_submitted_is_logged(
    live_server: LiveServer,
    people: Project,
    admin_http: Signed,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    base, csrf, client = f"/projects/{people.id}", admin_http.csrf, admin_http.client
    answers = {
        "cursor": client.get(f"{base}/cohorts/1/members"),
        "group": client.get(f"{base}/cohorts/builder/condition"),
        "cohort_id": client.get(f"{base}/cohorts/abc"),
        "mode": client.post(f"{base}/cohorts/1/export/1", data={"csrf_token": csrf}),
        "file": client.post(
            f"{base}/cohorts/static",
            data={"csrf_token": csrf, "name": SENTINEL[:200]},
            files={"other": ("x.txt", b"distinct_id\nana\n", "text/csv")},
        ),
        "no_project": client.get("/login", params={"no_project": "abc"}),
    }
    with live_server.client() as stranger:
        answers["password"] = stranger.post("/login", data={"email": ADMIN, "password": SENTINEL})
    for field, answer in answers.items():
        assert answer.status_code == 400, (field, answer.status_code)
        assert field in answer.text, field
        assert "Something went wrong" not in answer.text
        assert SENTINEL[:30] not in answer.text
    logged = "\n".join(
        record.getMessage() + str(record.exc_info) + str(record.__dict__)
        for record in caplog.records
    )
    assert SENTINEL[:30] not in logged
    assert "web request failed" not in logged


def test_the_definition_the_builder_shows_is_the_one_it_saves(
    live_server: LiveServer, people: Project, admin_http: Signed
) -> None:
    engage(live_server, people, {"ana": {"amount": 30}, "ben": {"amount": 10}})
    built = {
        "csrf_token": admin_http.csrf,
        "group": "g",
        "condition": "c",
        "c.group": "g",
        "c.kind": "property",
        "c.property": "amount",
        "c.op": "gt",
        "c.value": "20",
        "c.type": "auto",  # as the page offers it
    }
    base = f"/projects/{people.id}/cohorts"
    counted = admin_http.client.post(f"{base}/count", data=built)
    shown = re.search(r'<pre class="definition">(.*?)</pre>', counted.text, re.S)
    assert shown, counted.text
    definition = json.loads(html.unescape(shown.group(1)))
    assert definition == {"all": [{"property": "amount", "op": "gt", "value": 20}]}
    assert re.search(r'data-testid="live-count">1<', counted.text)

    saved = admin_http.client.post(base, data={**built, "name": "Big spenders"})
    assert saved.status_code == 303
    cohort_id = int(saved.headers["location"].rsplit("/", 1)[1])
    found = CohortService(live_server.engine, live_server.clock).get(people.id, cohort_id)
    assert found.definition == definition


def test_a_web_session_ends_after_the_session_hours(
    live_server: LiveServer, people: Project, admin_http: Signed
) -> None:
    cookie = admin_http.client.cookies.jar
    (session,) = [c for c in cookie if c.name == COOKIE]
    assert session.expires is not None  # Max-Age=43200: the browser drops it too
    page = f"/projects/{people.id}/cohorts"
    assert admin_http.client.get(page).status_code == 200
    live_server.clock.advance(timedelta(hours=11, minutes=59))
    assert admin_http.client.get(page).status_code == 200
    live_server.clock.advance(timedelta(minutes=1))
    ended = admin_http.client.get(page)
    assert ended.status_code == 303 and ended.headers["location"] == "/login"


def test_the_session_cookie_lasts_as_long_as_the_session_and_is_secure_behind_tls(
    engine: Engine, database_url: str, people: Project
) -> None:
    def set_cookie(trust_proxy: bool, **headers: str) -> str:
        settings = Settings(
            database_url=database_url,
            secret_key=SecretStr(TEST_KEY),
            session_hours=2,
            trust_proxy=trust_proxy,
        )
        app = create_app(settings, engine=engine, clock=FrozenClock(NOW))
        form = {"email": ADMIN, "password": PASSWORD}
        answer = in_process(app, "POST", "/login", data=form, headers=headers)
        assert answer.status_code == 303, answer.text
        return answer.headers["set-cookie"].lower()

    behind_tls = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "cohorts.example"}
    plain = set_cookie(False)
    assert "max-age=7200" in plain and "httponly" in plain and "samesite=strict" in plain
    assert "secure" not in plain
    assert "secure" not in set_cookie(False, **behind_tls)  # anyone can send the header
    trusted = set_cookie(True, Origin="https://cohorts.example", **behind_tls)
    assert "secure" in trusted and "max-age=7200" in trusted


def test_a_sign_in_posted_from_another_site_is_refused(
    live_server: LiveServer, people: Project
) -> None:
    form = {"email": ADMIN, "password": PASSWORD}
    with live_server.client() as client:
        for origin in ("http://evil.example", "null", live_server.url.replace("127.0.0.1", "x")):
            refused = client.post("/login", data=form, headers={"Origin": origin})
            assert refused.status_code == 403, origin
            assert "set-cookie" not in refused.headers
        same = client.post("/login", data=form, headers={"Origin": live_server.url})
        assert same.status_code == 303 and COOKIE in same.cookies


def test_a_failed_connect_shows_no_secret_and_a_webhook_url_with_credentials_is_refused(
    live_server: LiveServer,
    people: Project,
    admin_http: Signed,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    base, iterable = f"/projects/{people.id}/integrations", sandboxes["iterable"]
    htmx = {"HX-Request": "true", "X-CSRF-Token": admin_http.csrf}

    def connect(kind: str, fields: dict[str, str]) -> httpx.Response:
        return admin_http.client.post(f"{base}/connect/{kind}", data=fields, headers=htmx)

    iterable_form = {"setting.region": "us", "setting.base_url": iterable.server.url}
    failed = connect("iterable", {**iterable_form, "credential.api_key": "not-the-key"})
    assert "Iterable refused the credentials" in failed.text
    assert "cswh_" not in failed.text and "only now" not in failed.text

    key = iterable.state.credentials["api_key"]
    connected = connect("iterable", {**iterable_form, "credential.api_key": key})
    assert "Connected" in connected.text and "cswh_" in connected.text
    assert connected.headers["cache-control"] == "no-store"

    hook = sandboxes["webhook"].base_url
    host = hook.split("://", 1)[1]
    refused = connect("webhook", {"setting.url": f"http://bob:pa55word@{host}?token=t0ken"})
    assert "carries a user name or password" in refused.text
    assert "pa55word" not in refused.text and "t0ken" not in refused.text
    member = sign_in_http(live_server, MEMBER)
    page = member.client.get(base).text
    member.client.close()
    assert host not in page
    assert "pa55word" not in page and "t0ken" not in page and "bob" not in page


def test_an_upload_declared_over_the_limit_is_refused_before_its_body_is_read(
    engine: Engine, database_url: str, people: Project
) -> None:
    settings = Settings(database_url=database_url, secret_key=SecretStr(TEST_KEY))
    app = create_app(settings, engine=engine, clock=FrozenClock(NOW))
    path = f"/projects/{people.id}/cohorts/static"
    received: list[str] = []
    sent: list[Message] = []

    async def receive() -> Message:
        received.append("body")
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    declared = MAX_UPLOAD_BYTES + 1024 * 1024
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"cohorts.example"),
            (b"content-type", b"multipart/form-data; boundary=b"),
            (b"content-length", str(declared).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("cohorts.example", 80),
    }
    run_async(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert b"over 50 MB" in b"".join(m.get("body", b"") for m in sent[1:])
    assert received == []


def test_nothing_of_another_project_is_found(
    live_server: LiveServer,
    people: Project,
    admin_http: Signed,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    other = ProjectService(live_server.engine, live_server.clock).create("Other")
    token = admin_token(live_server.engine, other.id, "other-admin@example.com")
    with live_server.client(headers={"Authorization": f"Bearer {token}"}) as theirs:
        integration = connect(theirs, other, sandboxes["iterable"])
        cohort = create_cohort(theirs, other, "Theirs", PRO)
        sync = export(theirs, other, cohort, integration, "dynamic")["id"]

    mine, client = f"/projects/{people.id}", admin_http.client
    post = {"csrf_token": admin_http.csrf}
    answers = {
        "their project": client.get(f"/projects/{other.id}/cohorts"),
        "their integrations": client.get(f"/projects/{other.id}/integrations"),
        "cohort": client.get(f"{mine}/cohorts/{cohort}"),
        "cohort count": client.get(f"{mine}/cohorts/{cohort}/count"),
        "members": client.get(f"{mine}/cohorts/{cohort}/members", params={"cursor": "a"}),
        "export dialog": client.get(f"{mine}/cohorts/{cohort}/export/{integration}"),
        "preview": client.get(f"{mine}/cohorts/{cohort}/export/{integration}/preview"),
        "start sync": client.post(
            f"{mine}/cohorts/{cohort}/export/{integration}", data={**post, "mode": "one_time"}
        ),
        "disconnect": client.post(f"{mine}/integrations/{integration}/disconnect", data=post),
        "rotate": client.post(f"{mine}/integrations/{integration}/webhook-secret", data=post),
        "sync row": client.get(f"{mine}/syncs/{sync}/row"),
        "run history": client.get(f"{mine}/syncs/{sync}/runs"),
        "run now": client.post(f"{mine}/syncs/{sync}/run", data=post),
        "stop": client.post(f"{mine}/syncs/{sync}/stop", data=post),
        "confirm": client.post(f"{mine}/syncs/{sync}/confirm", data=post),
    }
    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(answers, 404)
    with live_server.client(headers={"Authorization": f"Bearer {token}"}) as theirs:
        still = theirs.get(f"/api/v1/projects/{other.id}/integrations/{integration}").json()
        assert still["status"] == "connected"
        assert theirs.get(f"/api/v1/projects/{other.id}/syncs/{sync}").json()["status"] == "active"


def test_names_and_partner_errors_are_escaped(
    live_server: LiveServer,
    people: Project,
    admin_http: Signed,
    admin_api: httpx.Client,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    name = '<script>alert("cohort")</script>'
    error = 'Bad key <img src=x onerror="alert(1)"> refused'
    integration = connect(admin_api, people, sandboxes["iterable"])
    cohort = create_cohort(admin_api, people, name, PRO)
    export(admin_api, people, cohort, integration, "dynamic")
    with write_transaction(live_server.engine) as connection:  # as a sync's failure leaves it
        connection.execute(
            integrations.update()
            .where(integrations.c.id == integration)
            .values(status="error", error=error)
        )
    base = f"/projects/{people.id}"
    shown = {
        f"{base}/cohorts": ["&lt;script&gt;alert(&#34;cohort&#34;)&lt;/script&gt;"],
        f"{base}/cohorts/{cohort}": ["&lt;script&gt;alert(&#34;cohort&#34;)&lt;/script&gt;"],
        f"{base}/cohorts/{cohort}/export/{integration}": ["&lt;script&gt;alert("],
        f"{base}/integrations": ["Bad key &lt;img src=x onerror=&#34;alert(1)&#34;&gt; refused"],
        f"{base}/syncs": ["&lt;script&gt;alert(", "Bad key &lt;img src=x onerror=&#34;alert"],
    }
    for path, escaped in shown.items():
        text = admin_http.client.get(path).text
        assert "<script>alert" not in text and "<img src=x" not in text, path
        assert all(part in text for part in escaped), path


def test_an_admin_pastes_xtremepushs_own_signing_key_on_its_card(
    live_server: LiveServer,
    people: Project,
    admin_http: Signed,
    admin_api: httpx.Client,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    xp = connect(admin_api, people, sandboxes["xtremepush"])
    iterable = connect(admin_api, people, sandboxes["iterable"])
    client, base = admin_http.client, f"/projects/{people.id}/integrations"
    cards = client.get(base).text
    assert cards.count('data-testid="partner-key-form"') == 1  # Xtremepush's card only
    assert f"{base}/{xp}/webhook-secret" in cards

    key = "xp-made-this-key-0123456789abcdef"
    answer = client.post(
        f"{base}/{xp}/webhook-secret", data={"csrf_token": admin_http.csrf, "secret": key}
    )
    assert answer.status_code == 200 and 'data-testid="partner-key-set"' in answer.text
    assert key not in answer.text
    body = orjson.dumps(xtremepush_webhook("message_open", "mo", live_server.clock.now()))
    signed = partner_headers("xtremepush", key, body)
    assert client.post(f"/webhooks/{xp}", content=body, headers=signed).status_code == 200

    refused = client.post(
        f"{base}/{iterable}/webhook-secret", data={"csrf_token": admin_http.csrf, "secret": key}
    )
    assert refused.status_code == 409


def test_a_blank_partner_key_is_refused_not_replaced_by_a_random_secret(
    people: Project,
    admin_http: Signed,
    admin_api: httpx.Client,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    xp = connect(admin_api, people, sandboxes["xtremepush"])
    answer = admin_http.client.post(
        f"/projects/{people.id}/integrations/{xp}/webhook-secret",
        data={"csrf_token": admin_http.csrf, "secret": "   "},
    )
    assert answer.status_code == 400
    assert "16-512 printable characters" in html.unescape(answer.text)
    assert "cswh_" not in answer.text
