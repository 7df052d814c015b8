"""A project over its ingestion rate gets 429 with Retry-After, while another project's requests
go on; nothing acknowledged with a 200 is lost and nothing refused is stored (issue 15, finding
14). The server's clock is frozen: its buckets refill only when the test moves it."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cohortsync.clock import SystemClock
from cohortsync.domain.accounts import Project
from cohortsync.services.projects import ProjectService
from cohortsync.storage.database import read_transaction
from cohortsync.storage.tables import events, profiles
from tests.conftest import LiveServer

RATE = 0.5  # records a second: one record takes 2 s to come back
BURST = 4
_ids = itertools.count()


@pytest.fixture
def tight_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live server's settings (read from the environment when it starts)."""
    monkeypatch.setenv("COHORTSYNC_INGEST_RATE_PER_SECOND", str(RATE))
    monkeypatch.setenv("COHORTSYNC_INGEST_BURST", str(BURST))


def _events(project: Project, server: LiveServer, count: int) -> list[dict[str, Any]]:
    at = int(server.clock.now().timestamp())
    return [
        {
            "event": "Played",
            "properties": {
                "token": project.token,
                "distinct_id": "u",
                "time": at,
                "$insert_id": f"e{next(_ids)}",
            },
        }
        for _ in range(count)
    ]


def _stored(server: LiveServer, project: Project) -> set[str]:
    with read_transaction(server.engine) as connection:
        rows = connection.execute(
            sa.select(events.c.insert_id).where(events.c.project_id == project.id)
        )
        return {row.insert_id for row in rows}


def _ids_of(batch: list[dict[str, Any]]) -> set[str]:
    return {e["properties"]["$insert_id"] for e in batch}


@pytest.mark.usefixtures("tight_limits")
def test_a_project_over_its_rate_gets_429_while_another_goes_on(
    live_server: LiveServer, project: Project
) -> None:
    other = ProjectService(live_server.engine, SystemClock()).create("other")
    acknowledged: dict[int, set[str]] = {project.id: set(), other.id: set()}
    with live_server.client() as client:

        def track(owner: Project, batch: list[dict[str, Any]]) -> httpx.Response:
            reply = client.post("/track", params={"verbose": "1"}, json=batch)
            if reply.status_code == 200:
                acknowledged[owner.id] |= _ids_of(batch)
            return reply

        assert track(project, _events(project, live_server, 3)).status_code == 200
        refused_batch = _events(project, live_server, 2)  # one token left, two wanted
        refused = track(project, refused_batch)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "2"  # the missing token at 0.5 a second
        assert refused.json()["status"] == 0
        assert "retry after 2 s" in refused.json()["error"]
        assert (client.post("/track", json=refused_batch).text, refused.status_code) == ("0", 429)

        # the other project has its own bucket: its requests are stored meanwhile
        for _ in range(2):
            assert track(other, _events(other, live_server, 2)).status_code == 200
        profile = {"$token": other.token, "$distinct_id": "u", "$set": {"plan": "pro"}}
        assert client.post("/engage", json=[profile]).status_code == 429  # 4 records were its burst
        assert _stored(live_server, project) == acknowledged[project.id]

        live_server.clock.advance(timedelta(seconds=2))
        assert track(project, refused_batch).status_code == 200  # the retry, once refilled

    assert _stored(live_server, project) == acknowledged[project.id]
    assert len(acknowledged[project.id]) == 5
    assert _stored(live_server, other) == acknowledged[other.id]
    with read_transaction(live_server.engine) as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(profiles)).scalar() == 0


@pytest.mark.usefixtures("tight_limits")
def test_an_import_over_the_rate_is_refused_before_its_body_is_read(
    live_server: LiveServer, project: Project
) -> None:
    secret = ProjectService(live_server.engine, SystemClock()).rotate_api_secret(project.id)
    batch = _events(project, live_server, BURST)
    with live_server.client(auth=(secret, "")) as client:
        first = client.post("/import", params={"strict": "1"}, json=batch)
        second = client.post(
            "/import", params={"strict": "1"}, json=_events(project, live_server, 1)
        )
    assert first.json() == {"code": 200, "num_records_imported": BURST, "status": "OK"}
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "2"
    assert second.json()["code"] == 429 and second.json()["status"] == "Too Many Requests"
    assert _stored(live_server, project) == _ids_of(batch)


@pytest.mark.usefixtures("tight_limits")
def test_a_big_body_costs_more_than_a_small_one_of_as_many_records(
    live_server: LiveServer, project: Project
) -> None:
    """Each request is charged a token a record and one a KiB of body: two updates of 1.2 KB
    each take the whole burst of 4, two small ones half of it."""
    other = ProjectService(live_server.engine, SystemClock()).create("other")

    def updates(owner: Project, note: str) -> list[dict[str, Any]]:
        return [
            {"$token": owner.token, "$distinct_id": f"u{n}", "$set": {"note": note}}
            for n in range(2)
        ]

    with live_server.client() as client:
        small = [client.post("/engage", json=updates(project, "x")) for _ in range(2)]
        big = [client.post("/engage", json=updates(other, "x" * 1200)) for _ in range(2)]
    assert [reply.status_code for reply in small] == [200, 200]
    assert [reply.status_code for reply in big] == [200, 429]
    assert big[1].headers["Retry-After"] == "8"  # 4 tokens at 0.5 a second
