"""Mixpanel's browser SDK, unchanged, on a page of another origin, sends to a live server (R-ING-1).

The page is served from a second loopback port, so every request the SDK makes is cross-origin:
the browser lets it through only if the server answers CORS. The published mixpanel-browser
build is vendored under ``tests/web/vendor/mixpanel-browser`` (its README says which release).
Also over plain HTTP: the preflight's answer, CORS on errors and nowhere but the SDK's endpoints,
``/import`` by project token, and ``img=1`` pixels.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from playwright.sync_api import Browser, Page, Request
from sqlalchemy.engine import Engine

from cohortsync.api.ingestion import BROWSER_PATHS, PIXEL_GIF, PREFLIGHT_MAX_AGE
from cohortsync.clock import SystemClock
from cohortsync.domain.accounts import Project
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.projects import ProjectService
from tests.conftest import LiveServer
from tests.helpers import admin_token, exported, profile
from tests.web.conftest import SQLITE_ONLY, Console

VENDOR = Path(__file__).parent / "vendor" / "mixpanel-browser"
PAGE_ORIGIN_HEADER = "http://127.0.0.1:1"  # any other origin, for the plain HTTP tests
T = TypeVar("T")


# --- the second origin: a static site on its own loopback port ---------------------------------


class _Site(ThreadingHTTPServer):
    """A loopback HTTP server answering GET from a dict of path -> (content type, body)."""

    files: dict[str, tuple[str, bytes]]


class _SiteHandler(BaseHTTPRequestHandler):
    server: _Site

    def do_GET(self) -> None:
        found = self.server.files.get(self.path.split("?", 1)[0])
        if found is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        content_type, body = found
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reports what matters."""


@dataclass
class Site:
    """The shop's web site: another origin than the cohortsync server."""

    url: str
    files: dict[str, tuple[str, bytes]]

    def page(self, path: str, token: str, config: dict[str, Any]) -> str:
        """Publish a page that loads mixpanel-browser the documented way (the snippet, the
        library self-hosted through ``MIXPANEL_CUSTOM_LIB_URL``) and inits it; its URL."""
        snippet = (VENDOR / "mixpanel-jslib-snippet.min.js").read_text()
        html = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title><link rel="icon" href="data:,">
<script>
window.MIXPANEL_CUSTOM_LIB_URL = "/mixpanel.min.js";
{snippet}
mixpanel.init({json.dumps(token)}, {json.dumps(config)});
</script></head><body><h1>Shop</h1></body></html>"""
        self.files[path] = ("text/html; charset=utf-8", html.encode())
        return f"{self.url}{path}"


@pytest.fixture
def site() -> Iterator[Site]:
    """The vendored SDK served from a second loopback port."""
    server = _Site(("127.0.0.1", 0), _SiteHandler)
    server.files = {
        "/mixpanel.min.js": (
            "text/javascript",
            (VENDOR / "mixpanel.min.js").read_bytes(),
        )
    }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Site(f"http://127.0.0.1:{server.server_address[1]}", server.files)
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


# --- the browser side ---------------------------------------------------------------------------


@dataclass
class Traffic:
    """Every request the page made to the cohortsync server, and how each ended."""

    api: str
    finished: list[tuple[str, str, int]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        """Record the page's requests to the server."""
        page.on("requestfinished", self._finished)
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))

    def _finished(self, request: Request) -> None:
        if request.url.startswith(self.api):
            response = request.response()
            status = response.status if response is not None else 0
            path = request.url[len(self.api) :].split("?", 1)[0]
            self.finished.append((request.method, path, status))


def eventually(read: Callable[[], T], done: Callable[[T], bool], what: str, console: Console) -> T:
    """``read()`` once ``done`` holds of it, polling for at most 15 s (the page's console
    problems, if any, say why not)."""
    deadline = time.monotonic() + 15
    while True:
        value = read()
        if done(value):
            return value
        assert time.monotonic() < deadline, (
            f"still not {what}: {value!r}; the page: {console.problems}"
        )
        time.sleep(0.1)


def by_name(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The events grouped by name."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        grouped.setdefault(event["event"], []).append(event)
    return grouped


def _loaded(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("() => window.mixpanel && window.mixpanel.__loaded === true")


@pytest.mark.parametrize(
    "batched",
    [pytest.param(True, id="batched"), pytest.param(False, id="unbatched")],
)
@SQLITE_ONLY
def test_browser_sdk_on_another_origin_tracks_identifies_and_sets_profiles(
    browser: Browser,
    live_server: LiveServer,
    engine: Engine,
    project: Project,
    site: Site,
    batched: bool,
) -> None:
    config: dict[str, Any] = {"api_host": live_server.url, "batch_requests": batched}
    if batched:
        config["batch_flush_interval_ms"] = 200  # the SDK's own timer flushes the queue
    url = site.page("/shop.html", project.token, config)
    assert not url.startswith(live_server.url)
    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    console, traffic = Console(), Traffic(live_server.url)
    console.watch(page)
    traffic.watch(page)
    try:
        _loaded(page, url)
        device = page.evaluate(
            """() => {
                window.replies = [];
                const reply = (r) => window.replies.push(r);
                mixpanel.track("Viewed Pricing", {plan: "pro"}, reply);
                const device = mixpanel.get_distinct_id();
                mixpanel.identify("user-42");
                mixpanel.track("Signed Up", {referrer: "friend"}, reply);
                mixpanel.people.set({$email: "ada@example.com", plan: "pro"}, reply);
                return device;
            }"""
        )
        # Unbatched, each callback has the server's reply; batched, the SDK answers 1 on enqueue.
        assert page.wait_for_function("() => window.replies.length === 3").json_value()
        assert page.evaluate("() => window.replies") == [1, 1, 1]

        bearer = admin_token(engine, project.id)
        with live_server.client() as client:
            events = eventually(
                lambda: by_name(exported(client, bearer, project.id)),
                lambda got: {"Viewed Pricing", "Signed Up"} <= got.keys(),
                "stored",
                console,
            )
            user = eventually(
                lambda: profile(client, bearer, project.id, "user-42"),
                lambda got: got.status_code == 200,
                "a profile",
                console,
            ).json()
            via_device = profile(client, bearer, project.id, device)
        page.wait_for_load_state("networkidle")
    finally:
        context.close()

    assert device.startswith("$device:")
    # Before identify() and after, the events are the user's; each arrived once.
    assert [len(events["Viewed Pricing"]), len(events["Signed Up"])] == [1, 1]
    assert {e["properties"]["distinct_id"] for named in events.values() for e in named} == {
        "user-42"
    }
    viewed = events["Viewed Pricing"][0]["properties"]
    assert viewed["distinct_id"] == "user-42"
    assert viewed["$distinct_id_before_identity"] == device
    assert viewed["plan"] == "pro"
    signed_up = events["Signed Up"][0]["properties"]
    assert (signed_up["distinct_id"], signed_up["referrer"]) == ("user-42", "friend")
    assert signed_up["$device_id"] == device.removeprefix("$device:")
    assert "token" not in signed_up
    assert user["distinct_id"] == "user-42"
    assert {k: user["properties"][k] for k in ("$email", "plan")} == {
        "$email": "ada@example.com",
        "plan": "pro",
    }
    assert user["identified"] is True
    assert via_device.status_code == 200 and via_device.json()["distinct_id"] == "user-42"

    # What the SDK called, each answered 200: its endpoints with the trailing slash, nothing at
    # init (no /decide, /flags or /settings with the default config).
    assert traffic.failed == []
    assert traffic.finished, "the page sent nothing to the server"
    assert {path for _, path, _ in traffic.finished} <= {"/track/", "/engage/"}
    assert {(method, status) for method, _, status in traffic.finished} == {("POST", 200)}
    assert console.problems == [], "\n".join(console.problems)


@SQLITE_ONLY
def test_queued_events_leave_with_the_page_and_are_stored_once_when_sent_again(
    browser: Browser,
    live_server: LiveServer,
    engine: Engine,
    project: Project,
    site: Site,
) -> None:
    """Batched, what is queued when the page hides goes by ``navigator.sendBeacon`` (a
    ``text/plain`` form body); the SDK keeps it queued and sends it again on the next page,
    and the server stores it once ($insert_id)."""
    slow = {"api_host": live_server.url, "batch_flush_interval_ms": 600_000}
    leaving = site.page("/leave.html", project.token, slow)
    returning = site.page("/return.html", project.token, {"api_host": live_server.url})
    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    console, traffic = Console(), Traffic(live_server.url)
    console.watch(page)
    traffic.watch(page)
    bearer = admin_token(engine, project.id)
    queue = f"__mpq_{project.token}_ev"
    try:
        _loaded(page, leaving)
        page.evaluate("() => mixpanel.track('Checkout Started', {items: 3})")
        page.wait_for_function(
            f"() => (localStorage.getItem({queue!r}) || '').includes('Checkout')"
        )
        with live_server.client() as client:
            assert "Checkout Started" not in by_name(exported(client, bearer, project.id))
            page.goto("about:blank")  # the page hides: the SDK flushes by beacon
            eventually(
                lambda: by_name(exported(client, bearer, project.id)),
                lambda got: "Checkout Started" in got,
                "sent by beacon",
                console,
            )
            # The shopper comes back after the queue's entries are due again (twice the flush
            # interval after they were queued): the SDK sends them on start.
            page.clock.set_system_time(datetime.now(UTC) + timedelta(hours=1))
            _loaded(page, returning)
            page.wait_for_function(f"() => localStorage.getItem({queue!r}) === '[]'")
            page.wait_for_load_state("networkidle")
            events = by_name(exported(client, bearer, project.id))
    finally:
        context.close()
    # Sent twice (the beacon, which the page's own request log cannot see, then the XHR of the
    # page come back), stored once.
    assert traffic.finished == [("POST", "/track/", 200)] and traffic.failed == []
    assert len(events["Checkout Started"]) == 1
    assert events["Checkout Started"][0]["properties"]["items"] == 3
    assert console.problems == [], "\n".join(console.problems)


# --- plain HTTP ---------------------------------------------------------------------------------


def _cors(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


@SQLITE_ONLY
@pytest.mark.parametrize("path", sorted(BROWSER_PATHS))
def test_preflight_answers_what_the_browser_asks(live_server: LiveServer, path: str) -> None:
    with live_server.client() as client:
        reply = client.options(
            path,
            headers={
                "Origin": PAGE_ORIGIN_HEADER,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-shop-version",
            },
        )
    assert reply.status_code == 204, reply.text
    assert _cors(reply) == {
        "access-control-allow-origin": PAGE_ORIGIN_HEADER,
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "GET, POST, OPTIONS",
        "access-control-allow-headers": "content-type,x-shop-version",
        "access-control-max-age": str(PREFLIGHT_MAX_AGE),
    }
    assert "Origin" in reply.headers["vary"]


def _event(project: Project, name: str = "Pixel Seen", **props: Any) -> dict[str, Any]:
    return {"event": name, "properties": {"token": project.token, "distinct_id": "u-1", **props}}


def _form(records: list[dict[str, Any]]) -> str:
    """The ``data=`` value the SDKs send: base64 of the JSON."""
    return base64.b64encode(orjson.dumps(records)).decode()


@SQLITE_ONLY
def test_replies_and_errors_carry_cors_where_pages_send(
    live_server: LiveServer, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = {"Origin": PAGE_ORIGIN_HEADER}
    readable = {
        "access-control-allow-origin": PAGE_ORIGIN_HEADER,
        "access-control-allow-credentials": "true",
    }
    with live_server.client() as client:
        stored = client.post("/track/", data={"data": _form([_event(project)])}, headers=origin)
        wrong_token = client.post(
            "/engage/?verbose=1",
            json=[{"$token": "0" * 32, "$distinct_id": "u-1", "$set": {"a": 1}}],
            headers=origin,
        )
        wrong_method = client.put("/groups", headers=origin)
        no_origin = client.post("/track", data={"data": _form([_event(project)])})

        def broken(self: IngestionService, records: object) -> None:
            raise RuntimeError("the database went away")

        monkeypatch.setattr(IngestionService, "track", broken)
        crashed = client.post("/track/", data={"data": _form([_event(project)])}, headers=origin)

    assert (stored.status_code, stored.text, _cors(stored)) == (200, "1", readable)
    assert wrong_token.status_code == 401 and wrong_token.json()["status"] == 0
    assert _cors(wrong_token) == readable
    assert wrong_method.status_code == 405 and _cors(wrong_method) == readable
    assert no_origin.status_code == 200 and _cors(no_origin) == {"access-control-allow-origin": "*"}
    # An unexpected error is still readable, so the SDK sees a 5xx and retries the batch.
    assert crashed.status_code == 500 and _cors(crashed) == readable
    assert crashed.json()["error"]["code"] == "internal_error"


@SQLITE_ONLY
def test_the_management_api_import_and_pages_stay_same_origin(
    live_server: LiveServer, engine: Engine, project: Project
) -> None:
    bearer = admin_token(engine, project.id)
    preflight = {
        "Origin": PAGE_ORIGIN_HEADER,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    events = f"/api/v1/projects/{project.id}/events?from=2026-01-01&to=2026-12-31"
    with live_server.client() as client:
        replies = {
            "preflight /api/v1": client.options(events, headers=preflight),
            "GET /api/v1": client.get(
                events, headers={"Origin": PAGE_ORIGIN_HEADER, "Authorization": f"Bearer {bearer}"}
            ),
            "preflight /import": client.options("/import", headers=preflight),
            "POST /import": client.post(
                "/import", json=[], auth=(project.token, ""), headers={"Origin": PAGE_ORIGIN_HEADER}
            ),
            "GET /login": client.get("/login", headers={"Origin": PAGE_ORIGIN_HEADER}),
            "preflight /track/x": client.options("/track/x", headers=preflight),
        }
    assert replies["GET /api/v1"].status_code == 200
    assert replies["GET /login"].status_code == 200
    assert replies["preflight /api/v1"].status_code == 405
    assert {name: _cors(reply) for name, reply in replies.items()} == {name: {} for name in replies}


def test_import_takes_the_project_token_as_username(
    live_server: LiveServer, engine: Engine, project: Project
) -> None:
    projects = ProjectService(engine, SystemClock())
    secret = projects.rotate_api_secret(project.id)
    sa_secret = projects.create_service_account(project.id, "importer")
    month_ago = int(time.time()) - 30 * 86400

    def send(name: str, auth: tuple[str, str], **params: str) -> httpx.Response:
        record = _event(project, name, time=month_ago, **{"$insert_id": name.replace(" ", "-")})
        with live_server.client() as client:
            return client.post(
                "/import", params={"strict": "1", **params}, json=[record], auth=auth
            )

    accepted = {
        "by token": send("by token", (project.token, "")),
        "by token for its project": send(
            "by token for its project", (project.token, ""), project_id=str(project.id)
        ),
        "by API secret": send("by API secret", (secret, "")),
        "by service account": send(
            "by service account", ("importer", sa_secret), project_id=str(project.id)
        ),
    }
    refused = {
        "wrong token": send("wrong token", ("0" * 32, "")),
        "token with a password": send("token with a password", (project.token, "x")),
        "token for another project": send(
            "token for another project", (project.token, ""), project_id=str(project.id + 1)
        ),
    }
    for name, reply in accepted.items():
        assert (name, reply.status_code, reply.json()["num_records_imported"]) == (name, 200, 1)
    for name, reply in refused.items():
        assert (name, reply.status_code, reply.json()["code"]) == (name, 401, 401)
    with live_server.client() as client:
        stored = by_name(exported(client, admin_token(engine, project.id), project.id))
    assert sorted(stored) == sorted(accepted)
    assert stored["by token"][0]["properties"]["time"] == month_ago * 1000


def _gif_size(body: bytes) -> tuple[int, int]:
    """Width and height of a GIF (its logical screen descriptor)."""
    assert body[:6] in (b"GIF87a", b"GIF89a"), body[:6]
    width, height = struct.unpack("<HH", body[6:10])
    return width, height


@SQLITE_ONLY
def test_img_1_answers_a_pixel_and_stores_what_it_carries(
    live_server: LiveServer, engine: Engine, project: Project
) -> None:
    engage = [{"$token": project.token, "$distinct_id": "u-1", "$set": {"plan": "pro"}}]
    with live_server.client() as client:
        replies = {
            "POST /track": client.post("/track?img=1", data={"data": _form([_event(project)])}),
            "GET /track/": client.get(
                "/track/", params={"data": _form([_event(project, "Email Opened")]), "img": "1"}
            ),
            "GET /engage": client.get("/engage", params={"data": _form(engage), "img": "1"}),
        }
        wrong_token = client.get(
            "/track", params={"data": _form([_event(project, token="0" * 32)]), "img": "1"}
        )
        # navigator.sendBeacon sends the SDK's form body as text/plain.
        beacon = client.post(
            "/track/",
            content=f"data={_form([_event(project, 'Left Page')])}",
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        )
        bearer = admin_token(engine, project.id)
        stored = by_name(exported(client, bearer, project.id))
        user = profile(client, bearer, project.id, "u-1").json()
    for name, reply in replies.items():
        assert (name, reply.status_code, reply.headers["content-type"]) == (name, 200, "image/gif")
        assert reply.content == PIXEL_GIF and _gif_size(reply.content) == (1, 1)
        assert "no-store" in reply.headers["cache-control"]
    assert wrong_token.status_code == 401 and wrong_token.headers["content-type"] == "image/gif"
    assert (beacon.status_code, beacon.text) == (200, "1")
    assert {name: len(events) for name, events in stored.items()} == {
        "Pixel Seen": 1,
        "Email Opened": 1,
        "Left Page": 1,
    }
    assert user["properties"] == {"plan": "pro"}
