"""A small, sharp dataset for cohort tests: typed and mistyped properties, missing ones, merged
identities, anonymous users, profile-only users and events on every window edge."""

from __future__ import annotations

from itertools import count
from typing import Any

from cohortsync.domain.accounts import Project
from cohortsync.services.ingestion import IngestionService
from tests.conftest import NOW_MS

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
NOV_1 = 1_793_491_200_000  # 2026-11-01T00:00:00Z

PROFILES: dict[str, dict[str, Any]] = {
    "ana": {
        "plan": "pro",
        "age": 34,
        "score": 7.5,
        "vip": True,
        "tags": ["beta", "mobile"],
        "country": "PT",
        "$email": "ana@x.io",
        "signup": "2026-01-15T10:00:00",
        "meta": {"a": 1},
    },
    "ben": {
        "plan": "free",
        "age": "34",
        "score": 3,
        "vip": False,
        "tags": ["web"],
        "country": "GB",
        "$email": "ben@x.io",
        "signup": "2025-12-01T00:00:00",
    },
    "cleo": {
        "plan": "enterprise",
        "age": 51,
        "score": 9.25,
        "tags": [],
        "country": None,
        "$email": "cleo@x.io",
    },
    "dan": {"plan": "Pro", "age": 19, "vip": True, "tags": "beta", "$email": "dan@corp.io"},
    "fay": {"plan": "pro", "age": 34.0, "vip": 1, "score": -2},
    "hal": {"plan": "free", "age": 40, "$email": "hal@x.io", "tags": ["beta", 5]},
    "ivy": {"plan": "pro", "age": 28, "tags": ["mobile", 5, True], "$email": "ivy@x.io"},
}

_ids = count()


def _event(name: str, time: int, user: str | None = None, **props: Any) -> dict[str, Any]:
    properties: dict[str, Any] = {"time": time, "$insert_id": f"c{next(_ids)}", **props}
    if user is not None:
        properties["distinct_id"] = user
    return {"event": name, "properties": properties}


EVENTS = [
    _event("Purchase", NOW_MS - DAY, "ana", amount=25, currency="USD"),
    _event("Purchase", NOW_MS - 2 * DAY, "ana", amount=15, currency="USD"),
    _event("Purchase", NOW_MS - 40 * DAY, "ana", amount=40, currency="EUR"),
    _event("App Open", NOW_MS - HOUR, "ana"),
    _event("App Open", NOW_MS - 7 * DAY, "ana"),  # exactly on the 7-day edge: inside
    _event("App Open", NOW_MS - 7 * DAY - 1, "ben"),  # one millisecond outside
    _event("Purchase", NOW_MS - 3 * DAY, "ben", amount=30, currency="USD"),
    _event("Purchase", NOW_MS - 3 * DAY + 1, "ben", amount=30.0, currency="GBP"),
    _event("Purchase", NOW_MS - 31 * DAY, "cleo", amount=100, coupon="SPRING"),
    _event("Purchase", NOV_1, "cleo", amount=12, coupon="AUTUMN-10"),  # first ms of Nov 1
    _event("Page View", NOW_MS, "cleo", path="/pricing"),  # exactly now: inside
    _event("App Open", NOW_MS - 10 * MINUTE, "dan"),
    _event("App Open", NOW_MS - 20 * MINUTE, "dan"),
    _event("App Open", NOW_MS - 30 * MINUTE, "dan"),
    _event("Purchase", NOW_MS - DAY, "dan", amount="25"),  # mistyped amount
    _event("App Open", NOW_MS - 2 * DAY, "gus"),
    _event("Page View", NOW_MS - 2 * DAY, "gus", path="/pricing/enterprise"),
    _event("Page View", NOW_MS - 10 * DAY, **{"$device_id": "hal-phone"}),  # before login
    _event("Sign Up", NOW_MS - 9 * DAY, **{"$device_id": "hal-phone", "$user_id": "hal"}),
    _event("Purchase", NOW_MS - 5 * DAY, "hal", amount=55, items=["book", "pen"]),
    _event("App Open", NOW_MS + 30 * MINUTE, "fay"),  # in the future: outside any "last" window
    _event("Purchase", NOV_1 - 1, "eve", amount=20),  # last ms of Oct 31
    _event("App Open", NOW_MS - DAY, "eve"),
]


def seed(service: IngestionService, project: Project) -> None:
    """Store the dataset through the normal ingestion path."""
    result = service.import_events(project, EVENTS)
    assert not result.failed, result.failed
    updates: list[dict[str, Any]] = [
        {"$token": project.token, "$distinct_id": user, "$set": props}
        for user, props in PROFILES.items()
    ]
    updates += [
        {"$token": project.token, "$distinct_id": "eve", "$set": {"temp": 1}},
        {"$token": project.token, "$distinct_id": "eve", "$unset": ["temp"]},  # empty profile
    ]
    result = service.engage(updates)
    assert not result.failed, result.failed
