"""The official ``mixpanel`` SDK from PyPI, pointed at a live server, stores what it sent."""

from __future__ import annotations

import time
from typing import Any

import pytest
from mixpanel import Consumer, Mixpanel, ServiceAccountCredentials
from sqlalchemy.engine import Engine

from cohortsync.clock import SystemClock
from cohortsync.domain.accounts import Project
from cohortsync.domain.identity import IdentityMode
from cohortsync.services.projects import ProjectService
from tests.conftest import LiveServer
from tests.helpers import admin_token, exported, profile


def _consumer(server: LiveServer, credentials: ServiceAccountCredentials | None = None) -> Consumer:
    return Consumer(
        events_url=f"{server.url}/track",
        people_url=f"{server.url}/engage",
        import_url=f"{server.url}/import",
        groups_url=f"{server.url}/groups",
        retry_limit=0,
        credentials=credentials,
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_official_sdk_events_profiles_and_merge(
    live_server: LiveServer, engine: Engine, project: Project
) -> None:
    projects = ProjectService(engine, SystemClock())
    projects.set_identity_mode(project.id, IdentityMode.ORIGINAL)
    api_secret = projects.rotate_api_secret(project.id)
    sa_secret = projects.create_service_account(project.id, "sdk-importer")
    bearer = admin_token(engine, project.id)
    credentials = ServiceAccountCredentials("sdk-importer", sa_secret, str(project.id))
    mp = Mixpanel(project.token, consumer=_consumer(live_server))
    mp_service = Mixpanel(project.token, consumer=_consumer(live_server, credentials))

    # Events: /track (recent) and /import (historical, by API secret and by service account).
    mp.track("user-1", "Signed Up", {"plan": "pro", "referrer": "friend"})
    mp.track("anon-7", "Page View", {"path": "/pricing"})
    thirty_days_ago = int(time.time()) - 30 * 86400
    mp.import_data(
        None, "user-1", "Purchase", thirty_days_ago, {"amount": 12.5}, api_secret=api_secret
    )
    mp_service.import_data(None, "user-1", "Purchase", thirty_days_ago + 60, {"amount": 40})

    # Profile operations, each through the SDK's own method.
    mp.people_set("user-1", {"$email": "ada@example.com", "plan": "pro", "tags": ["a"]})
    mp.people_set_once("user-1", {"plan": "free", "first_seen": "2026-01-01"})
    mp.people_increment("user-1", {"logins": 2})
    mp.people_increment("user-1", {"logins": 3})
    mp.people_append("user-1", {"tags": "b"})
    mp.people_union("user-1", {"tags": ["b", "c"]})
    mp.people_remove("user-1", {"tags": "a"})
    mp.people_set("user-1", {"temporary": True})
    mp.people_unset("user-1", ["temporary"])
    mp.people_set("user-9", {"$email": "gone@example.com"})
    mp.people_delete("user-9")
    mp.group_set("company", "acme", {"size": 50})

    # Identity: merge the anonymous id into the user (original ID merge).
    mp_service.merge(None, "user-1", "anon-7")

    client = live_server.client()
    events = exported(client, bearer, project.id)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_name.setdefault(event["event"], []).append(event)
    assert [e["properties"]["distinct_id"] for e in by_name["Signed Up"]] == ["user-1"]
    assert by_name["Signed Up"][0]["properties"]["plan"] == "pro"
    assert "token" not in by_name["Signed Up"][0]["properties"]
    # The anonymous page view now belongs to the merged user; the id it was sent with is kept.
    page_view = by_name["Page View"][0]["properties"]
    assert page_view["distinct_id"] == "user-1"
    assert page_view["$distinct_id_before_identity"] == "anon-7"
    purchases = sorted(by_name["Purchase"], key=lambda e: e["properties"]["time"])
    assert [p["properties"]["amount"] for p in purchases] == [12.5, 40]
    assert purchases[0]["properties"]["time"] == thirty_days_ago * 1000
    assert len(events) == 5  # 4 events + the $merge identity event, nothing twice

    user = profile(client, bearer, project.id, "anon-7")  # any id of the user works
    assert user.status_code == 200
    body = user.json()
    assert body["distinct_id"] == "user-1"
    assert sorted(body["ids"]) == ["anon-7", "user-1"]
    assert body["identified"] is True
    assert body["properties"] == {
        "$email": "ada@example.com",
        "plan": "pro",
        "first_seen": "2026-01-01",
        "logins": 5,
        "tags": ["b", "c"],
    }
    assert profile(client, bearer, project.id, "user-9").status_code == 404
