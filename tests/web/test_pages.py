"""Each Connect dialog, static uploads, the builder's messages, and a blocked run confirmed."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import expect

from cohortsync.domain.accounts import Project
from cohortsync.sandbox.fleet import RunningSandbox
from tests.conftest import LiveServer
from tests.sync.test_api import PRO, connect, create_cohort, engage, export, run_now
from tests.web.conftest import ADMIN, SQLITE_ONLY, Browsing

pytestmark = SQLITE_ONLY

# the inputs of each partner's Connect dialog, in order (SPEC §5), and the region choices
DIALOGS = {
    "iterable": (["credential.api_key", "setting.region"], ["us", "eu"]),
    "clevertap": (
        [
            "setting.connector_name",
            "credential.account_id",
            "credential.passcode",
            "setting.region",
            "setting.export_properties",
            "setting.segment_email",
        ],
        ["eu1", "in1", "sg1", "us1", "aps3", "mec1"],
    ),
    "xtremepush": (["credential.app_token", "setting.region"], ["eu", "us"]),
    "webhook": (
        [
            "setting.url",
            "credential.username",
            "credential.password",
            "setting.export_properties",
        ],
        [],
    ),
}
LABELS = {
    "setting.connector_name": "Connector name",
    "credential.account_id": "Project ID",
    "credential.passcode": "Passcode",
    "credential.api_key": "API key",
    "credential.app_token": "App token",
    "credential.username": "Username",
    "credential.password": "Password",
    "setting.url": "Webhook URL",
    "setting.export_properties": "Edit Columns",
}


def test_each_connect_dialog_asks_exactly_for_its_partners_fields(
    browsing: Browsing, people: Project, sandboxes: dict[str, RunningSandbox]
) -> None:
    browsing.sign_in(ADMIN)
    page = browsing.page
    page.goto(f"/projects/{people.id}/integrations")
    browsing.shoot("integrations-empty")
    for partner, (names, regions) in DIALOGS.items():
        page.locator(f"[data-partner={partner}]").get_by_role("button", name="Connect").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        fields = dialog.locator("form > label").locator("input, select")
        assert [f.get_attribute("name") for f in fields.all()] == names, partner
        for name in names:
            field = dialog.locator(f"[name='{name}']")
            kind = field.get_attribute("type")
            assert (kind == "password") == name.startswith("credential."), name
            if name in LABELS:
                expect(dialog.get_by_label(LABELS[name])).to_have_attribute("name", name)
        region = dialog.locator("[name='setting.region']")
        options = [o.get_attribute("value") for o in region.locator("option").all()]
        assert options == regions
        if partner == "clevertap":
            expect(dialog.get_by_label("Data center")).to_be_visible()
            browsing.shoot("connect-clevertap")
        dialog.get_by_role("button", name="Cancel").click()
        expect(page.get_by_role("dialog")).to_have_count(0)

    # CleverTap with its columns, against its emulator
    sandbox = sandboxes["clevertap"]
    page.locator("[data-partner=clevertap]").get_by_role("button", name="Connect").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connector name").fill("Mixpanel cohorts")
    dialog.get_by_label("Project ID").fill(sandbox.state.credentials["account_id"])
    dialog.get_by_label("Passcode").fill(sandbox.state.credentials["passcode"])
    dialog.get_by_label("Data center").select_option("in1")
    dialog.get_by_label("Edit Columns").fill("plan, $city")
    dialog.get_by_text("More options").click()
    dialog.get_by_label("Custom endpoint").fill(sandbox.server.url)
    dialog.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("dialog").get_by_text("Connected", exact=True)).to_be_visible()
    page.get_by_role("dialog").get_by_role("button", name="Done").click()
    card = page.locator("[data-partner=clevertap]")
    expect(card).to_contain_text("Data center")
    expect(card).to_contain_text("in1")
    expect(card).to_contain_text("plan, $city")
    assert sandbox.state.credentials["passcode"] not in page.content()


def test_a_static_cohort_from_a_csv_and_the_builders_messages(
    browsing: Browsing, people: Project, live_server: LiveServer, tmp_path: Path
) -> None:
    engage(live_server, people, {u: {"$email": f"{u}@x.io"} for u in ("ana", "ben", "cy")})
    browsing.sign_in(ADMIN)
    page = browsing.page

    upload = tmp_path / "vip.csv"
    upload.write_text("email\nana@x.io\ncy@x.io\nnobody@x.io\n")
    page.get_by_label("Name").fill("VIP")
    page.get_by_label("CSV file").set_input_files(upload)
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(rf"/projects/{people.id}/cohorts/\d+$"))
    expect(page.get_by_test_id("member-count")).to_have_text("2")
    ids = [row.locator("td").first.inner_text() for row in page.get_by_test_id("member").all()]
    assert ids == ["ana", "cy"]
    expect(page.get_by_test_id("member").first).to_contain_text("ana@x.io")

    bad = tmp_path / "bad.csv"
    bad.write_text("user\nana\n")
    page.goto(f"/projects/{people.id}/cohorts")
    page.get_by_label("Name").fill("Broken")
    page.get_by_label("CSV file").set_input_files(bad)
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#flash")).to_contain_text("needs a 'distinct_id' or an 'email' column")

    page.get_by_role("link", name="New cohort").first.click()
    expect(page.get_by_test_id("live-count-problem")).to_have_text("Condition 1: name the property")
    page.get_by_label("Name").fill("Half done")
    page.get_by_role("button", name="Save cohort").click()
    expect(page.get_by_role("alert")).to_contain_text("Condition 1: name the property")
    condition = page.get_by_test_id("condition").first
    condition.get_by_label("Property", exact=True).fill("$email")
    condition.get_by_label("Operator").select_option("contains")
    condition.get_by_label("Value", exact=True).fill("@x.io")
    condition.get_by_label("Value", exact=True).blur()
    expect(page.get_by_test_id("live-count")).to_have_text("3")


def test_a_blocked_run_shows_why_and_goes_ahead_once_confirmed(
    browsing: Browsing,
    people: Project,
    live_server: LiveServer,
    admin_api: httpx.Client,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    sandbox = sandboxes["xtremepush"]
    users = [f"u{i:02d}" for i in range(12)]
    engage(live_server, people, {u: {"plan": "pro"} for u in users})
    cohort_id = create_cohort(admin_api, people, "Pro", PRO)
    sync = export(admin_api, people, cohort_id, connect(admin_api, people, sandbox), "dynamic")
    assert run_now(admin_api, people, sync["id"])["status"] == "succeeded"
    engage(live_server, people, {u: {"plan": "free"} for u in users})

    browsing.sign_in(ADMIN)
    page = browsing.page
    page.goto(f"/projects/{people.id}/syncs")
    row = page.locator(f"#sync-{sync['id']}")
    row.get_by_role("button", name="Run now").click()
    expect(row.get_by_test_id("run-status")).to_have_text("blocked")
    expect(row.get_by_role("status")).to_contain_text("Blocked:")
    expect(row.get_by_role("status")).to_contain_text("12")
    expect(row.get_by_role("button", name="Run now")).to_have_count(0)
    browsing.shoot("syncs-blocked")
    with httpx.Client(base_url=sandbox.server.url) as control:
        assert control.get("/_sandbox/lists").json()["Pro"]["members"] == users

    page.once("dialog", lambda confirm: confirm.accept())
    row.get_by_role("button", name="Confirm").click()
    expect(row.get_by_test_id("run-status")).to_have_text("succeeded", timeout=20_000)
    expect(row.get_by_test_id("run-counts")).to_contain_text("12 removed")
    with httpx.Client(base_url=sandbox.server.url) as control:
        assert control.get("/_sandbox/lists").json()["Pro"]["members"] == []

    page.once("dialog", lambda confirm: confirm.accept())
    row.get_by_role("button", name="Stop").click()
    expect(row.get_by_test_id("sync-status")).to_contain_text("stopped")
    expect(row.get_by_role("button")).to_have_count(0)
