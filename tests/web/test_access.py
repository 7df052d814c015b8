"""Signing in and out, CSRF, and what a member is neither offered nor allowed."""

from __future__ import annotations

import re

import httpx

from cohortsync.domain.accounts import Project
from cohortsync.sandbox.fleet import RunningSandbox
from tests.conftest import LiveServer
from tests.web.conftest import ADMIN, MEMBER, SQLITE_ONLY, Browsing

pytestmark = SQLITE_ONLY


def test_a_wrong_password_is_refused_with_a_message(browsing: Browsing, people: Project) -> None:
    page = browsing.page
    page.goto("/")
    page.wait_for_url(re.compile(r"/login$"))
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "email or password is wrong"
    assert page.get_by_label("Email").input_value() == ADMIN
    assert browsing.cookies() == {}
    browsing.shoot("login")


def test_sign_in_shows_the_project_and_role_and_sign_out_ends_the_session(
    browsing: Browsing, people: Project
) -> None:
    browsing.sign_in(ADMIN)
    page = browsing.page
    header = page.locator("header.topbar")
    assert people.name in header.inner_text()
    assert page.get_by_test_id("role").text_content() == "admin"
    cookie = next(c for c in browsing.context.cookies() if c.get("name") == "cohortsync_session")
    assert cookie.get("httpOnly") is True and cookie.get("sameSite") == "Strict"
    stolen = browsing.cookies()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/login$"))
    # the token is revoked, not only forgotten by this browser
    with browsing.server.client(cookies=stolen) as client:
        after = client.get(f"/projects/{people.id}/cohorts", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"] == "/login"


def test_a_post_without_the_csrf_token_is_refused(
    browsing: Browsing, people: Project, sandboxes: dict[str, RunningSandbox]
) -> None:
    browsing.sign_in(ADMIN)
    form = {"credential.api_key": sandboxes["iterable"].state.credentials["api_key"]}
    path = f"/projects/{people.id}/integrations/connect/iterable"
    assert browsing.post(path, form).status_code == 403
    assert browsing.post(path, {**form, "csrf_token": "forged"}).status_code == 403
    other_session = browsing.csrf()[::-1]
    assert browsing.post(path, form, **{"X-CSRF-Token": other_session}).status_code == 403
    assert browsing.server.client().get(path).status_code == 303  # signed out: to the login
    with browsing.server.client(cookies=browsing.cookies()) as client:
        listed = client.get(f"/projects/{people.id}/integrations")
    assert "Not connected" in listed.text and "Needs attention" not in listed.text


def test_a_member_is_not_offered_admin_actions_and_is_refused_them(
    browsing: Browsing,
    people: Project,
    live_server: LiveServer,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    browsing.sign_in(MEMBER)
    page = browsing.page
    assert page.get_by_test_id("role").text_content() == "member"
    page.goto(f"/projects/{people.id}/integrations")
    assert page.locator("[data-partner]").count() == 4
    assert page.get_by_role("button", name="Connect").count() == 0
    assert "Ask a project admin" in page.locator("[data-partner=iterable]").inner_text()
    browsing.shoot("integrations-member")

    csrf = browsing.csrf()
    sandbox = sandboxes["iterable"]
    form = {
        "csrf_token": csrf,
        "credential.api_key": sandbox.state.credentials["api_key"],
        "setting.base_url": sandbox.server.url,
    }
    base = f"/projects/{people.id}"
    refused = browsing.post(f"{base}/integrations/connect/iterable", form)
    assert refused.status_code == 403
    assert "only project admins" in refused.text
    assert (
        browsing.post(
            f"{base}/integrations/connect/iterable", {}, **{"X-CSRF-Token": csrf}
        ).status_code
        == 403
    )
    with httpx.Client(base_url=live_server.url, cookies=browsing.cookies()) as client:
        assert client.get(f"{base}/integrations/connect/iterable").status_code == 403
    assert sandbox.state.requests == []  # the partner was never called
