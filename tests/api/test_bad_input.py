"""Bad input gets a 4xx naming the problem, and loses nothing that was valid."""

from __future__ import annotations

import base64
import gzip
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from sqlalchemy.engine import Engine

from cohortsync.clock import SystemClock
from cohortsync.domain.accounts import Project
from cohortsync.services.projects import ProjectService
from cohortsync.storage.database import read_transaction
from cohortsync.warehouse.events import count_events
from tests.conftest import LiveServer

NOW_S = int(time.time())


def event(project: Project, **overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "token": project.token,
        "distinct_id": "user-1",
        "time": NOW_S,
        "$insert_id": f"id-{time.monotonic_ns()}",
    }
    props.update(overrides)
    return {"event": "Played", "properties": {k: v for k, v in props.items() if v is not ...}}


@dataclass
class Case:
    name: str
    path: str
    build: Callable[[Project], dict[str, Any]]  # kwargs for httpx.post
    status: int
    message: str


def _json(records: Any, **extra: Any) -> dict[str, Any]:
    return {
        "content": orjson.dumps(records),
        "headers": {"Content-Type": "application/json"},
        **extra,
    }


CASES = [
    Case(
        "malformed JSON",
        "/track?verbose=1",
        lambda p: {"content": b'[{"event": "x",', "headers": {"Content-Type": "application/json"}},
        400,
        "not valid JSON",
    ),
    Case(
        "bad gzip",
        "/track?verbose=1",
        lambda p: {
            "content": b"\x1f\x8bnot gzip at all",
            "headers": {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        },
        400,
        "not valid gzip",
    ),
    Case("empty body", "/track?verbose=1", lambda p: {"content": b""}, 400, "body is empty"),
    Case(
        "wrong token",
        "/track?verbose=1",
        lambda p: _json([event(p, token="0" * 32)]),
        401,
        "valid project token",
    ),
    Case(
        "missing token",
        "/engage?verbose=1",
        lambda p: _json([{"$distinct_id": "u", "$set": {"a": 1}}]),
        401,
        "valid project token",
    ),
    Case(
        "wrong API secret on /import",
        "/import?strict=1",
        lambda p: _json([event(p)], auth=("not-the-secret", "")),
        401,
        "wrong /import credentials",
    ),
    Case(
        "no credentials on /import",
        "/import?strict=1",
        lambda p: _json([event(p)]),
        401,
        "needs HTTP Basic auth",
    ),
    Case(
        "more than 2,000 records",
        "/track?verbose=1",
        lambda p: _json([event(p) for _ in range(2001)]),
        400,
        "at most 2000",
    ),
    Case(
        "over 10 MB",
        "/track?verbose=1",
        lambda p: _json([event(p, blob="x" * (11 * 1024 * 1024))]),
        413,
        "10 MB",
    ),
    Case(
        "gzip bomb over 10 MB uncompressed",
        "/track?verbose=1",
        lambda p: {
            "content": gzip.compress(b"[" + b" " * (11 * 1024 * 1024) + b"]"),
            "headers": {"Content-Encoding": "gzip", "Content-Type": "application/json"},
        },
        413,
        "10 MB",
    ),
    Case(
        "bad $insert_id",
        "/track?verbose=1",
        lambda p: _json(
            [event(p, **{"$insert_id": "has spaces and is far too long for mixpanel"})]
        ),
        400,
        "$insert_id' must be 1-36 characters",
    ),
    Case(
        "reserved distinct_id",
        "/track?verbose=1",
        lambda p: _json([event(p, distinct_id="undefined")]),
        400,
        "reserved placeholder",
    ),
    Case(
        "empty distinct_id",
        "/track?verbose=1",
        lambda p: _json([event(p, distinct_id="")]),
        400,
        "reserved placeholder",
    ),
    Case(
        "old event on /track",
        "/track?verbose=1",
        lambda p: _json([event(p, time=NOW_S - 6 * 86400)]),
        400,
        "send historical events to /import",
    ),
    Case(
        "event from the future",
        "/track?verbose=1",
        lambda p: _json([event(p, time=NOW_S + 2 * 3600)]),
        400,
        "one hour in the future",
    ),
    Case(
        "missing event name",
        "/track?verbose=1",
        lambda p: _json([{"properties": event(p)["properties"]}]),
        400,
        "'event' is required",
    ),
    Case(
        "missing distinct_id",
        "/track?verbose=1",
        lambda p: _json([event(p, distinct_id=...)]),
        400,
        "distinct_id' is required",
    ),
    Case(
        "255 properties",
        "/track?verbose=1",
        lambda p: _json([event(p, **{f"p{i}": i for i in range(255)})]),
        400,
        "fewer than 255",
    ),
    Case(
        "time that is not a number",
        "/track?verbose=1",
        lambda p: _json([event(p, time="yesterday")]),
        400,
        "seconds or milliseconds",
    ),
    Case(
        "profile update without an operation",
        "/engage?verbose=1",
        lambda p: _json([{"$token": p.token, "$distinct_id": "u"}]),
        400,
        "no operation",
    ),
    Case(
        "$add of a string",
        "/engage?verbose=1",
        lambda p: _json([{"$token": p.token, "$distinct_id": "u", "$add": {"n": "1"}}]),
        400,
        "must be a number",
    ),
    Case(
        "two operations in one update",
        "/engage?verbose=1",
        lambda p: _json(
            [{"$token": p.token, "$distinct_id": "u", "$set": {"a": 1}, "$unset": ["b"]}]
        ),
        400,
        "one operation per update",
    ),
    Case(
        "form body without data",
        "/track?verbose=1",
        lambda p: {
            "content": b"verbose=1&ip=0",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        },
        400,
        "no 'data' field",
    ),
    Case(
        "base64 data that is not JSON",
        "/track?verbose=1",
        lambda p: {
            "content": b"data=" + base64.b64encode(b"nope{"),
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        },
        400,
        "not valid JSON",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_with_a_message(
    case: Case, live_server: LiveServer, project: Project, engine: Engine
) -> None:
    with live_server.client() as client:
        response = client.post(case.path, **case.build(project))
    assert response.status_code == case.status, response.text
    assert case.message in response.text
    with read_transaction(engine) as connection:
        assert count_events(connection, project.id) == 0


def test_strict_import_stores_valid_records_and_lists_invalid_ones(
    live_server: LiveServer, project: Project, engine: Engine
) -> None:
    secret = ProjectService(engine, SystemClock()).rotate_api_secret(project.id)
    batch = [
        event(project, **{"$insert_id": "good-1"}),
        event(project, distinct_id="null", **{"$insert_id": "bad-1"}),
        event(project, **{"$insert_id": "good-2"}),
        event(project, time="soon", **{"$insert_id": "bad-2"}),
        {"event": "", "properties": {"distinct_id": "u"}},
        event(project, **{"$insert_id": "good-3"}),
    ]
    with live_server.client() as client:
        response = client.post(
            "/import",
            params={"strict": "1"},
            content=gzip.compress(orjson.dumps(batch)),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            auth=(secret, ""),
        )
    assert response.status_code == 400
    body = response.json()
    assert body["num_records_imported"] == 3
    assert body["error"] == "some data points in the request failed validation"
    assert [(f["index"], f["insert_id"], f["field"]) for f in body["failed_records"]] == [
        (1, "bad-1", "properties.distinct_id"),
        (3, "bad-2", "properties.time"),
        (4, None, "event"),
    ]
    with read_transaction(engine) as connection:
        assert count_events(connection, project.id) == 3


def test_strict_import_all_valid_replies_ok(
    live_server: LiveServer, project: Project, engine: Engine
) -> None:
    projects = ProjectService(engine, SystemClock())
    projects.create_service_account(project.id, "loader")
    secret = projects.create_service_account(project.id, "loader-2")
    ndjson = b"\n".join(orjson.dumps(event(project)) for _ in range(3))
    with live_server.client() as client:
        response = client.post(
            "/import",
            params={"strict": "1", "project_id": str(project.id)},
            content=ndjson,
            headers={"Content-Type": "application/x-ndjson"},
            auth=("loader-2", secret),
        )
        wrong_project = client.post(
            "/import",
            params={"strict": "1", "project_id": str(project.id + 1)},
            content=ndjson,
            headers={"Content-Type": "application/x-ndjson"},
            auth=("loader-2", secret),
        )
    assert response.json() == {"code": 200, "num_records_imported": 3, "status": "OK"}
    assert wrong_project.status_code == 401


def test_mixed_tokens_store_the_valid_events(
    live_server: LiveServer, project: Project, engine: Engine
) -> None:
    batch = [event(project), event(project, token="f" * 32), event(project)]
    with live_server.client() as client:
        response = client.post("/track", params={"verbose": "1"}, json=batch)
        quiet = client.post("/track", json=[event(project, token="f" * 32)])
    assert response.status_code == 400
    assert response.json()["num_records_imported"] == 2
    assert "record 1" in response.json()["error"]
    assert (quiet.status_code, quiet.text) == (401, "0")
    with read_transaction(engine) as connection:
        assert count_events(connection, project.id) == 2


def test_api_errors_use_the_error_envelope(live_server: LiveServer, project: Project) -> None:
    with live_server.client() as client:
        no_token = client.get("/api/v1/projects")
        bad_login = client.post("/api/v1/login", json={"email": "x@y.z", "password": "nope"})
        missing_field = client.post("/api/v1/login", json={"email": "x@y.z"})
        unknown = client.get("/api/v1/nothing-here")
    assert no_token.status_code == 401
    assert no_token.json()["error"]["code"] == "unauthorized"
    assert bad_login.status_code == 401
    assert bad_login.json()["error"]["message"] == "email or password is wrong"
    assert missing_field.status_code == 400
    assert "password" in missing_field.json()["error"]["message"]
    assert unknown.status_code == 404
