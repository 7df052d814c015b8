"""Issue 15, finding 5: static cohorts by email became one giant OR inside the write lock (over
~1,000 emails: "Expression tree is too large"; 20 k emails stalled ingestion for seconds), and
the API took a body of any size. Emails are now resolved through the folded-email index in
chunks, in any case, before a short write; the upload is capped with a 413."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import httpx
import orjson
import pytest
from sqlalchemy.engine import Engine

from cohortsync.clock import FrozenClock
from cohortsync.domain.accounts import Project
from cohortsync.services.cohorts import MAX_STATIC_BYTES, MAX_STATIC_ENTRIES, CohortService
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.projects import ProjectService
from cohortsync.storage.cohort_store import CohortStore
from tests.conftest import NOW, LiveServer
from tests.helpers import admin_token

PEOPLE = 5_000


def _seed(engine: Engine, project: Project) -> None:
    """PEOPLE profiles with an email in mixed case (user 7: ``User7@Example.COM``), two that
    share an address, and some whose ``$email`` is not a string."""
    updates = [
        {
            "$token": project.token,
            "$distinct_id": f"user-{i:05}",
            "$set": {"$email": f"User{i}@Example.COM" if i % 2 else f"user{i}@example.com"},
        }
        for i in range(PEOPLE)
    ]
    updates += [
        {"$token": project.token, "$distinct_id": "twin", "$set": {"$email": "user0@example.com"}},
        {"$token": project.token, "$distinct_id": "number", "$set": {"$email": 12345}},
        {"$token": project.token, "$distinct_id": "listed", "$set": {"$email": ["user1@x.io"]}},
    ]
    assert not IngestionService(engine, FrozenClock(NOW)).engage(updates).failed


def test_thousands_of_emails_in_any_case_find_exactly_their_users(
    engine: Engine, project: Project
) -> None:
    _seed(engine, project)
    asked = [f"USER{i}@example.com" for i in range(0, PEOPLE, 2)]  # another case
    asked += [f" user{i}@example.com " for i in range(1, PEOPLE, 2)]  # with blanks
    asked += [f"nobody{i}@example.com" for i in range(500)] + ["12345", "user1@x.io", ""]
    cohorts = CohortService(engine, FrozenClock(NOW))
    cohort = cohorts.create_static(project.id, "Everyone by email", emails=asked)
    expected = {f"user-{i:05}" for i in range(PEOPLE)} | {"twin"}
    assert cohorts.count(project.id, cohort.id) == len(expected)
    members, cursor = set(), None
    while True:
        page = cohorts.member_page(project.id, cohort.id, limit=1000, cursor=cursor)
        members |= {m["distinct_id"] for m in page.members}
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert members == expected


def test_emails_are_resolved_before_the_write_lock_is_taken(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the emails are looked up, another writer (ingestion) can still commit."""
    project, _ = ProjectService(sqlite_engine, FrozenClock(NOW)).ensure_default()
    _seed(sqlite_engine, project)
    looked_up = CohortStore.users_with_email
    path = sqlite_engine.url.database
    assert path is not None
    writers: list[str] = []

    def watched(store: CohortStore, project_id: int, emails: Sequence[str]) -> set[str]:
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # fails at once if the write lock is held
            other.execute("ROLLBACK")
            writers.append("committed")
        except sqlite3.OperationalError as locked:
            writers.append(str(locked))
        finally:
            other.close()
        return looked_up(store, project_id, emails)

    monkeypatch.setattr(CohortStore, "users_with_email", watched)
    cohorts = CohortService(sqlite_engine, FrozenClock(NOW))
    cohort = cohorts.create_static(project.id, "Some", emails=["user1@example.com"])
    assert writers == ["committed"]
    assert cohorts.count(project.id, cohort.id) == 1


@pytest.fixture
def api(live_server: LiveServer, engine: Engine, project: Project) -> httpx.Client:
    token = admin_token(engine, project.id)
    return live_server.client(headers={"Authorization": f"Bearer {token}"})


def test_the_upload_is_capped_with_a_413(api: httpx.Client, project: Project) -> None:
    url = f"/api/v1/projects/{project.id}/cohorts/static"
    too_many = {"name": "Too many", "distinct_ids": [str(i) for i in range(MAX_STATIC_ENTRIES + 1)]}
    many = api.post(url, content=orjson.dumps(too_many))
    assert many.status_code == 413, many.text
    assert "100,000" in many.json()["error"]["message"]
    padding = b" " * (MAX_STATIC_BYTES + 1)
    big = api.post(url, content=b'{"name": "big", "emails": ["a@b.c"]}' + padding)
    assert big.status_code == 413 and "16 MiB" in big.json()["error"]["message"]
    csv = b"email\n" + b"a@b.c\n" * (MAX_STATIC_BYTES // 6 + 1)
    big_csv = api.post(
        url, params={"name": "csv"}, content=csv, headers={"Content-Type": "text/csv"}
    )
    assert big_csv.status_code == 413
    long_id = api.post(url, json={"name": "long", "distinct_ids": ["x" * 256]})
    assert long_id.status_code == 400 and "distinct_ids[0]" in long_id.json()["error"]["message"]
    long_name = api.post(
        url,
        params={"name": "n" * 300},
        content=b"distinct_id\nana\n",
        headers={"Content-Type": "text/csv"},
    )
    assert long_name.status_code == 400, long_name.text
    fine = api.post(url, json={"name": "Fine", "distinct_ids": ["ana"], "emails": ["a@b.c"]})
    assert fine.status_code == 201, fine.text
    assert [c["name"] for c in api.get(f"/api/v1/projects/{project.id}/cohorts").json()] == ["Fine"]
