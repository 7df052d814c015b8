"""Security headers on every response (issue 15, finding 15): pages, the API, ingestion and
static files of a live server carry the Content-Security-Policy and the rest; HSTS only over
HTTPS (the server's own, or a trusted proxy's); the SDK endpoints stay open cross-origin."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from cohortsync.app import create_app
from cohortsync.domain.accounts import Project
from cohortsync.security_headers import DOCS_POLICY, HSTS, PAGE_POLICY
from cohortsync.settings import Settings
from cohortsync.web.pages import PageRoute
from tests.conftest import TEST_KEY, LiveServer, serving
from tests.helpers import admin_token, run_async

SHOP = "http://shop.example"  # a web site sending events with mixpanel-browser

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def assert_guarded(reply: httpx.Response, policy: str = PAGE_POLICY) -> None:
    """The headers every response carries over plain HTTP (no HSTS there)."""
    headers = reply.headers
    assert headers["content-security-policy"] == policy, reply.request.url
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    assert "camera=()" in headers["permissions-policy"]
    assert "strict-transport-security" not in headers


def test_pages_api_ingestion_and_static_files_carry_the_headers(
    live_server: LiveServer, project: Project
) -> None:
    token = admin_token(live_server.engine, project.id)
    with live_server.client() as client:
        login = client.get("/login")
        assert login.status_code == 200 and "<form" in login.text
        assert_guarded(login)
        directives = dict(
            part.strip().split(" ", 1)
            for part in login.headers["content-security-policy"].split(";")
        )
        assert directives["default-src"] == "'self'"
        assert directives["script-src"] == "'self'"  # no inline script, no eval
        assert directives["frame-ancestors"] == "'none'"
        assert directives["object-src"] == "'none'"
        assert directives["base-uri"] == "'self'" and directives["form-action"] == "'self'"
        assert_guarded(client.get(f"/projects/{project.id}/cohorts"))  # a redirect to sign in
        assert_guarded(client.get("/static/app.css"))

        bearer = {"Authorization": f"Bearer {token}"}
        listed = client.get(f"/api/v1/projects/{project.id}/syncs", headers=bearer)
        assert listed.status_code == 200
        assert_guarded(listed)
        assert_guarded(client.get(f"/api/v1/projects/{project.id}/syncs"))  # a 401
        assert_guarded(client.get("/healthz"))
        assert_guarded(client.get("/docs"), DOCS_POLICY)

        event = {"event": "Viewed", "properties": {"token": project.token, "distinct_id": "u1"}}
        tracked = client.post("/track?verbose=1", json=[event], headers={"Origin": SHOP})
        assert tracked.status_code == 200 and tracked.json()["status"] == 1, tracked.text
        assert_guarded(tracked)
        assert tracked.headers["access-control-allow-origin"] in (SHOP, "*")
        preflight = client.options(
            "/track",
            headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code in (200, 204)
        assert preflight.headers["access-control-allow-origin"] in (SHOP, "*")
        assert_guarded(preflight)


def request(
    engine: Engine, database_url: str, url: str, *, trust_proxy: bool, **headers: str
) -> httpx.Response:
    """One GET of ``url`` to an app built with ``trust_proxy``, in this process."""
    settings = Settings(
        database_url=database_url, secret_key=SecretStr(TEST_KEY), trust_proxy=trust_proxy
    )
    app = create_app(settings, engine=engine)

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            return await client.get(url, headers=headers)

    return run_async(send())


def test_hsts_only_over_https(engine: Engine, database_url: str) -> None:
    plain = request(engine, database_url, "http://cohorts.example/login", trust_proxy=False)
    assert "strict-transport-security" not in plain.headers
    tls = request(engine, database_url, "https://cohorts.example/login", trust_proxy=False)
    assert tls.headers["strict-transport-security"] == HSTS
    assert tls.headers["content-security-policy"] == PAGE_POLICY

    # X-Forwarded-Proto counts only from a trusted proxy (anyone can send the header), and
    # then its first value, the client's side of the proxy
    for trusted, proto, hsts in (
        (False, "https", None),  # claimed by anyone
        (True, "https, http", HSTS),  # proxied from https
        (True, "http", None),  # behind a plain-http proxy
    ):
        forwarded = request(
            engine,
            database_url,
            "http://cohorts.example/healthz",
            trust_proxy=trusted,
            **{"X-Forwarded-Proto": proto},
        )
        assert forwarded.headers.get("strict-transport-security") == hsts, (trusted, proto)


def test_a_500_carries_the_headers(engine: Engine, database_url: str) -> None:
    """Starlette's error handler answers an unexpected error from outside every middleware; the
    500 carries the same headers (HSTS included, when the request came over HTTPS)."""
    settings = Settings(database_url=database_url, secret_key=SecretStr(TEST_KEY), trust_proxy=True)
    app = create_app(settings, engine=engine)

    def fail() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/api/v1/failing", fail)  # this test's app only
    app.router.add_api_route("/failing-page", fail, route_class_override=PageRoute)
    with serving(app) as url:  # a connection each: the server closes it after a 500
        api = httpx.get(f"{url}/api/v1/failing")
        page = httpx.get(f"{url}/failing-page")
        over_tls = httpx.get(f"{url}/api/v1/failing", headers={"X-Forwarded-Proto": "https"})

    assert api.status_code == page.status_code == over_tls.status_code == 500
    assert api.json()["error"]["code"] == "internal_error"
    assert "a bug" not in api.text + page.text
    assert_guarded(api)
    assert_guarded(page)
    assert over_tls.headers["strict-transport-security"] == HSTS
    assert over_tls.headers["content-security-policy"] == PAGE_POLICY
