"""MTU (R-MTU-1, R-MTU-2): outreach events exempt only with their partner's $source, identity
events never counted, users merged before counting; checked against a plain reference."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from cohortsync.clock import FrozenClock, SystemClock
from cohortsync.domain.accounts import Project
from cohortsync.ingest.events import EventIngestor
from cohortsync.services import mtu
from cohortsync.services.projects import ProjectService
from tests.conftest import LiveServer
from tests.helpers import admin_token
from tests.mtu.reference import reference_report

NOVEMBER = mtu.Month(2026, 11)
START = datetime(2026, 11, 1, tzinfo=UTC)
SEQUENCE = iter(range(10**9))


def event(
    name: str, user: str, at: datetime, source: str | None = None, **extra: Any
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "distinct_id": user,
        "time": int(at.timestamp() * 1000),
        "$insert_id": f"mtu-{next(SEQUENCE)}",
        **extra,
    }
    if source is not None:
        properties["$source"] = source
    return {"event": name, "properties": properties}


def store(engine: Engine, project: Project, sent: list[dict[str, Any]]) -> None:
    now = int(datetime(2027, 1, 1, tzinfo=UTC).timestamp() * 1000)
    result = EventIngestor(engine).ingest(project, list(enumerate(sent)), now_ms=now, oldest_ms=0)
    assert not result.failed, result.failed


def scenario() -> list[dict[str, Any]]:
    """The month of the acceptance: users only messaged, users who opened, product users."""
    day = START + timedelta(days=9)
    return [
        event("emailSend", "sent-only-it", day, "iterable"),
        event("emailSend", "sent-only-it", day, "iterable"),
        event("Notification Sent", "sent-only-ct", day, "clevertap"),
        event("xp.message.delivery", "sent-only-xp", day, "xtremepush"),
        event("emailSend", "opened-it", day, "iterable"),
        event("emailOpen", "opened-it", day, "iterable"),  # not on Iterable's list: counts
        event("xp.message.delivery", "opened-xp", day, "xtremepush"),
        event("xp.message.open", "opened-xp", day, "xtremepush"),  # on Xtremepush's list
        event("Purchase", "buyer", day),
        event("emailSend", "buyer", day, "iterable"),
        event("$identify", "identify-only", day),
        event("emailSend", "no-source", day),  # the same names without $source count
        event("Notification Sent", "wrong-source", day, "iterable"),  # not Iterable's name
        event("Purchase", "october-only", START - timedelta(hours=1)),
        event("Purchase", "december-only", START + timedelta(days=30)),
        # one person under two ids: counted once (simplified ID merge links the device)
        event("App Open", "merged", day, **{"$user_id": "merged", "$device_id": "phone-1"}),
        event("emailOpen", "$device:phone-1", day + timedelta(hours=1), "iterable"),
    ]


def test_the_month_of_the_acceptance(engine: Engine, project: Project) -> None:
    sent = scenario()
    store(engine, project, sent)
    report = mtu.MtuReports(engine).report(project.id, NOVEMBER).as_json()
    assert report["mtu"] == 5
    expected_counted = {"opened-it", "buyer", "no-source", "wrong-source", "merged"}
    assert len(expected_counted) == 5
    assert report["events"] == 15
    assert report["exempt"] == {
        "*": {"$identify": 1},
        "clevertap": {"Notification Sent": 1},
        "iterable": {"emailSend": 4},
        "xtremepush": {"xp.message.delivery": 2, "xp.message.open": 1},
    }
    assert report["exempt_events"] == 9 and report["qualifying_events"] == 6
    # sent-only-it, sent-only-ct, sent-only-xp, opened-xp, identify-only
    assert report["not_counted_users"] == 5
    assert report["reached_only_by_exempt"] == {"clevertap": 1, "iterable": 1, "xtremepush": 2}
    canonical = {"$device:phone-1": "merged", "phone-1": "merged"}
    start, end = NOVEMBER.start_ms(), NOVEMBER.next().start_ms()
    reference = reference_report(sent, canonical, mtu.MtuReports(engine).exemptions(), start, end)
    assert {k: report[k] for k in reference} == reference


def test_editing_the_exemption_list_changes_the_count(engine: Engine, project: Project) -> None:
    store(engine, project, scenario())
    before = mtu.MtuReports(engine).report(project.id, NOVEMBER).as_json()["mtu"]
    mtu.MtuReports(engine).remove_exemption("iterable", "emailSend")
    assert mtu.MtuReports(engine).report(project.id, NOVEMBER).as_json()["mtu"] == before + 1
    mtu.MtuReports(engine).add_exemption("*", "Purchase")
    after = mtu.MtuReports(engine).report(project.id, NOVEMBER).as_json()
    assert after["mtu"] == before + 1  # the buyer still counts through their emailSend
    assert after["exempt"]["*"] == {"$identify": 1, "Purchase": 1}


NAMES = ["emailSend", "emailOpen", "Notification Sent", "Notification Clicked",
         "xp.message.delivery", "xp.message.open", "$identify", "$merge", "Purchase"]  # fmt: skip
SOURCES = [None, "iterable", "clevertap", "xtremepush"]
USERS = ["u1", "u2", "u3", "u4", "$device:d1", "$device:d2"]

events_strategy = st.lists(
    st.tuples(
        st.sampled_from(NAMES),
        st.sampled_from(SOURCES),
        st.sampled_from(USERS),
        st.integers(min_value=-2 * 86_400, max_value=32 * 86_400),  # seconds from November 1
    ),
    max_size=40,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(drawn=events_strategy)
def test_any_month_matches_the_reference(
    fresh_engine: Callable[[], Engine], drawn: list[tuple[str, str | None, str, int]]
) -> None:
    engine = fresh_engine()
    project, _ = ProjectService(engine, SystemClock()).ensure_default()
    # d1 is u1's phone, linked in October (outside the month, but it merges them for November)
    link = event(
        "App Open", "u1", START - timedelta(days=5), **{"$user_id": "u1", "$device_id": "d1"}
    )
    sent = [link] + [event(n, u, START + timedelta(seconds=s), src) for n, src, u, s in drawn]
    store(engine, project, sent)
    report = mtu.MtuReports(engine).report(project.id, NOVEMBER).as_json()
    canonical = {"$device:d1": "u1", "d1": "u1"}
    start, end = NOVEMBER.start_ms(), NOVEMBER.next().start_ms()
    reference = reference_report(sent, canonical, mtu.MtuReports(engine).exemptions(), start, end)
    assert {k: report[k] for k in reference} == reference


def test_the_report_over_http_and_its_errors(live_server: LiveServer, project: Project) -> None:
    store(live_server.engine, project, scenario())
    token = admin_token(live_server.engine, project.id)
    api = live_server.client(headers={"Authorization": f"Bearer {token}"})
    reply = api.get(f"/api/v1/projects/{project.id}/mtu", params={"month": "2026-11"})
    assert reply.status_code == 200
    assert reply.json()["month"] == "2026-11" and reply.json()["mtu"] == 5
    bad = api.get(f"/api/v1/projects/{project.id}/mtu", params={"month": "November"})
    assert bad.status_code == 400 and "YYYY-MM" in bad.json()["error"]["message"]
    assert httpx.get(f"{live_server.url}/api/v1/projects/{project.id}/mtu").status_code == 401
    listed = api.get("/api/v1/mtu/exemptions").json()
    assert {"source": "xtremepush", "event": "xp.message.open"} in listed
    assert len(listed) == 3 + 7 + 17 + 20


@pytest.mark.parametrize("text", ["2026-13", "26-11", "2026-1", ""])
def test_months_are_checked(text: str) -> None:
    with pytest.raises(Exception, match="YYYY-MM"):
        mtu.Month.parse(text)


@pytest.mark.parametrize(
    ("text", "before", "after"),
    [
        ("2026-01", "2025-12", "2026-02"),
        ("2026-12", "2026-11", "2027-01"),
        ("2026-07", "2026-06", "2026-08"),
    ],
)
def test_months_step_across_years(text: str, before: str, after: str) -> None:
    month = mtu.Month.parse(text)
    assert str(month.previous()) == before
    assert str(month.next()) == after
    assert month.previous().next() == month


def test_the_chart_history_recounts_past_months_after_a_while_and_this_month_always(
    engine: Engine, project: Project
) -> None:
    clock = FrozenClock(datetime(2026, 12, 10, tzinfo=UTC))
    history = mtu.MtuHistory(engine, clock, recount_after=timedelta(minutes=15))
    december = NOVEMBER.next()
    store(engine, project, scenario())
    first = history.by_month(project.id, [NOVEMBER, december])
    assert first == [(NOVEMBER, 5), (december, 1)]

    later = [
        event("Purchase", "late-import", START + timedelta(days=3)),  # November, imported late
        event("Purchase", "new-in-december", START + timedelta(days=35)),
    ]
    store(engine, project, later)
    clock.advance(timedelta(minutes=14))
    assert history.by_month(project.id, [NOVEMBER, december]) == [(NOVEMBER, 5), (december, 2)]
    clock.advance(timedelta(minutes=2))
    assert history.by_month(project.id, [NOVEMBER, december]) == [(NOVEMBER, 6), (december, 2)]


def test_the_chart_history_counts_again_after_an_exemption_edit(
    engine: Engine, project: Project
) -> None:
    clock = FrozenClock(datetime(2026, 12, 10, tzinfo=UTC))
    history = mtu.MtuHistory(engine, clock, recount_after=timedelta(minutes=15))
    store(engine, project, scenario())
    assert history.by_month(project.id, [NOVEMBER]) == [(NOVEMBER, 5)]
    mtu.MtuReports(engine).remove_exemption("iterable", "emailSend")  # sent-only-it now counts
    try:
        assert history.by_month(project.id, [NOVEMBER]) == [(NOVEMBER, 6)]
    finally:
        mtu.MtuReports(engine).add_exemption("iterable", "emailSend")
