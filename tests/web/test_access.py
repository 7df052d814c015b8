"""Signing in and out, CSRF, and what a member is neither offered nor allowed."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect

from cohortsync.domain.accounts import Project
from cohortsync.sandbox.fleet import RunningSandbox
from tests.sync.test_api import PRO, connect, create_cohort, export
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
    admin_api: httpx.Client,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sandbox = sandboxes["iterable"]
    integration_id = connect(admin_api, people, sandbox)
    cohort_id = create_cohort(admin_api, people, "Pro", PRO)
    sync_id = export(admin_api, people, cohort_id, integration_id, "dynamic")["id"]
    sandbox.state.reset()

    browsing.sign_in(MEMBER)
    page, base = browsing.page, f"/projects/{people.id}"
    assert page.get_by_test_id("role").text_content() == "member"

    page.goto(f"{base}/integrations")
    assert page.locator("[data-partner]").count() == 4
    iterable = page.locator("[data-partner=iterable]")
    expect(iterable.get_by_text("Connected", exact=True)).to_be_visible()
    for offered in ("Connect", "Disconnect", "Rotate webhook secret"):
        expect(page.get_by_role("button", name=offered)).to_have_count(0)
    expect(page.locator("[data-partner=clevertap]")).to_contain_text("Ask a project admin")
    browsing.shoot("integrations-member")

    page.goto(f"{base}/cohorts")
    page.get_by_label("Actions for Pro").click()
    menu = page.locator(".cohort-menu .menu-items")
    expect(menu.get_by_role("link", name="Members")).to_be_visible()
    expect(menu).not_to_contain_text("Export to")
    expect(menu.get_by_role("button")).to_have_count(0)

    page.goto(f"{base}/syncs")
    expect(page.get_by_test_id("sync")).to_have_count(1)
    for offered in ("Run now", "Stop", "Confirm"):
        expect(page.get_by_role("button", name=offered)).to_have_count(0)

    # posted anyway, with the member's own session and CSRF token: 403, and nothing happens
    csrf = browsing.csrf()
    connect_form = {
        "csrf_token": csrf,
        "credential.api_key": sandbox.state.credentials["api_key"],
        "setting.base_url": sandbox.server.url,
    }
    refused = [
        browsing.post(f"{base}/integrations/connect/iterable", connect_form),
        browsing.post(f"{base}/integrations/{integration_id}/disconnect", {"csrf_token": csrf}),
        browsing.post(f"{base}/integrations/{integration_id}/webhook-secret", {"csrf_token": csrf}),
        browsing.post(
            f"{base}/cohorts/{cohort_id}/export/{integration_id}",
            {"csrf_token": csrf, "mode": "one_time"},
        ),
        browsing.post(f"{base}/syncs/{sync_id}/run", {}, **{"X-CSRF-Token": csrf}),
        browsing.post(f"{base}/syncs/{sync_id}/stop", {"csrf_token": csrf}),
        browsing.post(f"{base}/syncs/{sync_id}/confirm", {"csrf_token": csrf}),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert all("only project admins may do this" in r.text for r in refused)
    with browsing.server.client(cookies=browsing.cookies()) as client:
        assert client.get(f"{base}/integrations/connect/iterable").status_code == 403
        assert client.get(f"{base}/cohorts/{cohort_id}/export/{integration_id}").status_code == 403
    assert sandbox.state.requests == []  # the partner was never called
    page.goto(f"{base}/integrations")
    expect(iterable.get_by_text("Connected", exact=True)).to_have_count(1)
    page.goto(f"{base}/syncs")
    expect(page.get_by_test_id("sync-status")).to_contain_text("active")
    expect(page.get_by_test_id("last-run")).to_contain_text("none yet")
