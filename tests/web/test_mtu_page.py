"""The MTU page shows the MTU service's report, and a chart of MTU by month."""

from __future__ import annotations

from playwright.sync_api import expect

from cohortsync.domain.accounts import Project
from cohortsync.services import mtu
from tests.conftest import LiveServer
from tests.mtu.test_mtu import NOVEMBER, scenario, store
from tests.web.conftest import ADMIN, SQLITE_ONLY, Browsing

pytestmark = SQLITE_ONLY


def test_the_mtu_page_shows_the_report_of_the_chosen_month(
    browsing: Browsing, people: Project, live_server: LiveServer
) -> None:
    store(live_server.engine, people, scenario())
    report = mtu.MtuReports(live_server.engine).report(people.id, NOVEMBER).as_json()
    october = mtu.MtuReports(live_server.engine).report(people.id, mtu.Month(2026, 10)).as_json()
    assert (report["mtu"], october["mtu"]) == (5, 1)  # the scenario's, as its own test says

    browsing.sign_in(ADMIN)
    page = browsing.page
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="MTU").click()
    page.get_by_label("Month", exact=True).fill("2026-11")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(f"**/projects/{people.id}/mtu?month=2026-11")

    shown = {
        key: page.get_by_test_id(test_id).inner_text()
        for key, test_id in [
            ("mtu", "mtu"),
            ("events", "events"),
            ("qualifying_events", "qualifying-events"),
            ("exempt_events", "exempt-events"),
            ("not_counted_users", "not-counted"),
        ]
    }
    assert shown == {key: f"{report[key]:,}" for key in shown}
    rows = [
        tuple(cell.inner_text() for cell in row.locator("td").all())
        for row in page.get_by_test_id("exempt-row").all()
    ]
    expected = [
        (source, name, str(n))
        for source, names in report["exempt"].items()
        for name, n in names.items()
    ]
    assert rows == expected and len(rows) == 5

    chart = page.get_by_test_id("mtu-chart")
    expect(chart.locator("g[data-month]")).to_have_count(12)
    bars = {
        g.get_attribute("data-month"): g.get_attribute("data-value")
        for g in chart.locator("g[data-month]").all()
    }
    months = list(bars)
    assert (months[0], months[-1]) == ("2025-12", "2026-11")
    assert bars["2026-11"] == "5" and bars["2026-10"] == "1"
    assert {v for m, v in bars.items() if m not in ("2026-10", "2026-11")} == {"0"}
    browsing.shoot("mtu")
