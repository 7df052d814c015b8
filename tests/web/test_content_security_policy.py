"""The Content-Security-Policy is enforced by the browser and breaks no page: signed in as an
admin, the pages (the Audit log among them) load without a violation, and a script the page did
not ship does not run."""

from __future__ import annotations

from cohortsync.domain.accounts import Project
from cohortsync.storage.audit_store import AuditStore
from cohortsync.storage.database import write_transaction
from tests.conftest import LiveServer
from tests.web.conftest import ADMIN, SQLITE_ONLY, Browsing

pytestmark = SQLITE_ONLY


def test_the_pages_load_under_the_policy_and_an_injected_script_does_not_run(
    browsing: Browsing, people: Project, live_server: LiveServer
) -> None:
    with write_transaction(live_server.engine) as connection:
        AuditStore(connection).record(
            project_id=people.id,
            user_id=None,
            action="sync.stop",
            target="sync:1",
            detail={"why": "a row for the page"},
            at=live_server.clock.now(),
            actor="cli",
        )
    browsing.sign_in(ADMIN)
    page = browsing.page
    navigation = page.get_by_role("navigation", name="Pages")
    for name, path in [
        ("Integrations", "integrations"),
        ("Syncs", "syncs"),
        ("MTU", "mtu"),
        ("Cohorts", "cohorts"),
        ("Audit log", "audit"),
    ]:
        navigation.get_by_role("link", name=name).click()
        page.wait_for_url(f"**/projects/{people.id}/{path}")
    assert page.get_by_test_id("audit-entry").filter(has_text="a row for the page").count() == 1
    assert browsing.console.problems == []  # no page needed anything the policy refuses

    ran = page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = true";
            document.head.appendChild(script);
            return window.injected === true;
        }"""
    )
    assert ran is False
    refused = [p for p in browsing.console.problems if "Content Security Policy" in p]
    assert refused, browsing.console.problems
    browsing.console.problems.clear()  # the refusal was the point
