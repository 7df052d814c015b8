"""The whole story of the web UI against the partner emulators: an admin connects Iterable (a
wrong key first), builds a behavioural cohort, exports it dynamic, sees the run succeed and the
partner's list equal to the cohort, and disconnects."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Locator, Page, expect

from cohortsync.domain.accounts import Project
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.services.cohorts import CohortService
from tests.conftest import LiveServer
from tests.sync.test_api import engage, track
from tests.web.conftest import ADMIN, SQLITE_ONLY, Browsing

pytestmark = SQLITE_ONLY

# who bought how often, on which channel (the cohort: Purchase at least twice in the last 30
# days on the web, and not on the trial plan)
PURCHASES = {"ana": 2, "ben": 3, "cy": 1, "dee": 2, "eve": 2, "fay": 2}
PLANS = {"ana": "pro", "ben": "free", "cy": "pro", "dee": "trial", "eve": "pro", "fay": "pro"}
IN_COHORT = {"ana", "ben", "eve"}
NO_EMAIL = {"eve"}  # in the cohort, but Iterable matches by email: skipped


def shop(server: LiveServer, project: Project) -> None:
    """Profiles and purchases through the ingestion endpoints."""
    engage(
        server,
        project,
        {
            user: {"plan": plan, **({} if user in NO_EMAIL else {"$email": f"{user}@x.io"})}
            for user, plan in PLANS.items()
        },
    )
    for user, times in PURCHASES.items():
        channel = "store" if user == "fay" else "web"
        for _ in range(times):
            track(server, project, "Purchase", distinct_id=user, channel=channel)


def open_page(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Pages").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)


def connect_dialog(page: Page, partner: str) -> Locator:
    page.locator(f"[data-partner={partner}]").get_by_role("button", name="Connect").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    return dialog


def connect_iterable(page: Page, sandbox: RunningSandbox, api_key: str) -> Locator:
    dialog = connect_dialog(page, "iterable")
    dialog.get_by_label("API key").fill(api_key)
    dialog.get_by_label("Region").select_option("us")
    dialog.get_by_text("More options").click()
    dialog.get_by_label("Custom endpoint").fill(sandbox.server.url)
    dialog.get_by_role("button", name="Connect").click()
    return page.get_by_role("dialog")


def build_cohort(page: Page) -> None:
    """Repeat web buyers, not on trial: an event condition with a count, a window and a
    filter, and a negated property condition, in one 'all' group."""
    page.get_by_label("Name").fill("Repeat web buyers")
    first = page.get_by_test_id("condition").nth(0)
    first.get_by_label("Kind of condition").select_option("event")
    first.get_by_label("Event", exact=True).fill("Purchase")
    first.get_by_label("Count comparison").select_option(">=")
    first.get_by_label("Count", exact=True).fill("2")
    first.get_by_label("Window", exact=True).fill("30")
    first.get_by_label("Window unit").select_option("day")
    first.get_by_role("button", name="+ where…").click()
    where = first.get_by_test_id("filter")
    where.get_by_label("Event property").fill("channel")
    where.get_by_label("Operator").select_option("equals")
    where.get_by_label("Value", exact=True).fill("web")
    page.get_by_role("button", name="+ Add condition").click()
    second = page.get_by_test_id("condition").nth(1)
    second.get_by_label("not", exact=True).check()
    second.get_by_label("Kind of condition").select_option("property")
    second.get_by_label("Property", exact=True).fill("plan")
    second.get_by_label("Operator").select_option("equals")
    second.get_by_label("Value", exact=True).fill("trial")
    second.get_by_label("Value", exact=True).blur()


def test_admin_connects_builds_exports_and_disconnects(
    browsing: Browsing,
    people: Project,
    live_server: LiveServer,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    page, sandbox, base = browsing.page, sandboxes["iterable"], f"/projects/{people.id}"
    shop(live_server, people)
    browsing.sign_in(ADMIN)

    # a new project: the empty states say what to do next
    expect(page.get_by_role("heading", name="No cohorts yet")).to_be_visible()
    browsing.shoot("cohorts-empty")

    # Integrations: a wrong key gets the partner's own words; the right one, Connected
    open_page(page, "Integrations")
    dialog = connect_iterable(page, sandbox, "not-the-key")
    expect(dialog.get_by_role("alert")).to_contain_text("Iterable refused the credentials")
    expect(dialog.get_by_role("alert")).to_contain_text("Invalid API key")
    dialog.get_by_role("button", name="Done").click()
    card = page.locator("[data-partner=iterable]")
    expect(card.get_by_text("Needs attention")).to_be_visible()
    page.once("dialog", lambda confirm: confirm.accept())
    card.get_by_role("button", name="Disconnect").click()
    expect(card.get_by_text("Not connected.")).to_be_visible()

    api_key = sandbox.state.credentials["api_key"]
    dialog = connect_iterable(page, sandbox, api_key)
    expect(dialog.get_by_text("Connected", exact=True)).to_be_visible()
    secret = dialog.get_by_test_id("webhook-secret").inner_text()
    assert secret.startswith("cswh_")
    browsing.shoot("integrations-connected-secret-once")
    dialog.get_by_role("button", name="Done").click()
    expect(card.get_by_text("Connected", exact=True)).to_be_visible()
    expect(card).to_contain_text(f"{live_server.url}/webhooks/")
    page.reload()
    assert api_key not in page.content() and secret not in page.content()
    browsing.shoot("integrations")

    # Cohorts: the builder counts as it goes; saving opens the members
    open_page(page, "Cohorts")
    page.get_by_role("link", name="New cohort").first.click()
    build_cohort(page)
    expect(page.get_by_test_id("live-count")).to_have_text(str(len(IN_COHORT)))
    browsing.shoot("cohort-builder")
    expect(page.locator("#count-progress")).to_be_hidden()  # no count in flight when saving
    page.get_by_role("button", name="Save cohort").click()
    page.wait_for_url(re.compile(rf"{base}/cohorts/\d+$"))
    saved = re.search(r"/cohorts/(\d+)$", page.url)
    assert saved is not None
    cohort_id = int(saved.group(1))
    expect(page.get_by_test_id("member-count")).to_have_text(str(len(IN_COHORT)))
    shown = {row.locator("td").first.inner_text() for row in page.get_by_test_id("member").all()}
    assert shown == IN_COHORT
    browsing.shoot("cohort-members")

    # ⋯ → Export to → Iterable → dynamic → preview → Start Sync
    open_page(page, "Cohorts")
    row = page.locator("tr[data-cohort='Repeat web buyers']")
    expect(row.get_by_test_id("cohort-count")).to_have_text(str(len(IN_COHORT)))
    browsing.shoot("cohorts")
    row.get_by_label("Actions for Repeat web buyers").click()
    row.get_by_role("button", name="Iterable").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Dynamic").check()
    expect(dialog.get_by_test_id("preview-add")).to_have_text(str(len(IN_COHORT - NO_EMAIL)))
    expect(dialog.get_by_test_id("preview")).to_contain_text("Skipped: missing email")
    expect(dialog.get_by_test_id("preview-coverage")).to_have_text("67%")
    list_name = dialog.get_by_test_id("list-name").inner_text()
    assert list_name == f"mixpanel_Repeat web buyers_{cohort_id}"  # Iterable's template
    browsing.shoot("export-dialog")
    dialog.get_by_role("button", name="Start Sync").click()
    page.wait_for_url(re.compile(rf"{base}/syncs"))

    # Syncs: Run now, then the row follows the run until it succeeds
    sync = page.get_by_test_id("sync").first
    expect(sync.get_by_test_id("sync-status")).to_contain_text("active")
    sync.get_by_role("button", name="Run now").click()
    sync = page.get_by_test_id("sync").first
    expect(sync.get_by_test_id("run-status")).to_have_text("succeeded", timeout=20_000)
    expect(sync.get_by_test_id("run-counts")).to_contain_text("+2 added")
    sync.get_by_text("Run history").click()
    expect(sync.get_by_test_id("run")).to_have_count(1)
    expect(sync.get_by_test_id("run")).to_contain_text("missing email: 1")
    browsing.shoot("syncs")

    # the partner's list, read through the emulator's control API, is the cohort
    with httpx.Client(base_url=sandbox.server.url) as control:
        lists = control.get("/_sandbox/lists").json()
    assert list(lists) == [list_name]
    page_of_members = CohortService(live_server.engine, live_server.clock).member_page(
        people.id, cohort_id
    )
    emails = {
        m["properties"]["$email"] for m in page_of_members.members if "$email" in m["properties"]
    }
    assert set(lists[list_name]["members"]) == emails == {f"{u}@x.io" for u in IN_COHORT - NO_EMAIL}

    # Disconnect (confirmed): the card says so and the sync stops
    open_page(page, "Integrations")
    page.once("dialog", lambda confirm: confirm.accept())
    card.get_by_role("button", name="Disconnect").click()
    expect(card.get_by_text("Not connected.")).to_be_visible()
    open_page(page, "Syncs")
    expect(page.get_by_test_id("sync-status").first).to_contain_text("stopped")
