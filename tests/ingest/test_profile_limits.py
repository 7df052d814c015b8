"""/engage and /groups keep to the limits Mixpanel documents for profiles (issue 15, finding 6):
an update over one is refused by its position, with the field and the limit named, and the
valid updates beside it are stored."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.engine import Engine

from cohortsync.domain.accounts import Project
from cohortsync.domain.profile_bounds import MAX_STORED_BYTES, MAX_STORED_PROPERTIES
from cohortsync.ingest.profile_limits import (
    MAX_NAME_LENGTH,
    MAX_OBJECT_KEYS,
    MAX_PROPERTIES,
    MAX_VALUE_BYTES,
)
from cohortsync.services.ingestion import IngestionService
from cohortsync.storage.database import read_transaction
from cohortsync.warehouse.profiles import get_profile
from tests.conftest import LiveServer

KB = 1024


def nested(depth: int) -> Any:
    """A value whose containers nest ``depth`` levels (the property's own value is level 1)."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


# (operation, value, field named in the refusal, words of the message)
OVER = [
    ("$set", {f"p{i}": i for i in range(MAX_PROPERTIES + 1)}, "$set", "at most 2000"),
    ("$set_once", {"n" * (MAX_NAME_LENGTH + 1): 1}, "$set_once", "longer than 255"),
    ("$set", {"deep": nested(4)}, "$set.deep", "deeper than 3"),
    ("$append", {"deep": [[[[1]]]]}, "$append.deep", "deeper than 3"),
    ("$set", {"wide": {f"k{i}": i for i in range(MAX_OBJECT_KEYS + 1)}}, "$set.wide", "255 keys"),
    ("$set", {"big": "x" * (MAX_VALUE_BYTES + 1)}, "$set.big", "256 KB"),
    ("$union", {"big": ["x" * 1000] * 300}, "$union.big", "256 KB"),
    ("$set", {f"p{i}": "x" * (250 * KB) for i in range(5)}, "$set", "1 MB"),
    ("$add", {"n": 2**53 + 1}, "$add.n", "2^53"),
    ("$add", {"n": -1e308}, "$add.n", "2^53"),
    ("$unset", [f"p{i}" for i in range(MAX_PROPERTIES + 1)], "$unset", "at most 2000"),
    ("$set", {"$CleverTap_user_id": "undefined"}, "$set.$CleverTap_user_id", "placeholder"),
]

WITHIN = [
    ("$set", {f"p{i}": i for i in range(MAX_PROPERTIES)}),
    ("$set", {"n" * MAX_NAME_LENGTH: 1}),
    ("$set", {"deep": nested(3), "list": [[[1]]]}),
    ("$set", {"wide": {f"k{i}": i for i in range(MAX_OBJECT_KEYS)}}),
    ("$set", {"big": "x" * (MAX_VALUE_BYTES - 2)}),  # 256 KB of JSON with its quotes
    ("$set", {f"p{i}": "x" * (200 * KB) for i in range(5)}),
    ("$add", {"n": 2**53, "m": -(2**53)}),
]


def _update(project: Project, user: str, operation: str, value: Any) -> dict[str, Any]:
    return {"$token": project.token, "$distinct_id": user, operation: value}


def test_updates_over_a_limit_are_refused_and_their_neighbours_are_stored(
    service: IngestionService, project: Project, engine: Engine
) -> None:
    batch = []
    for number, (operation, value, _field, _words) in enumerate(OVER):
        batch.append(_update(project, f"fine-{number}", "$set", {"plan": "pro"}))
        batch.append(_update(project, f"over-{number}", operation, value))
    result = service.engage(batch)
    assert result.imported == len(OVER)
    refused = [(f.index, f.field) for f in result.failed]
    assert refused == [(2 * n + 1, field) for n, (_, _, field, _) in enumerate(OVER)]
    for failure, (_, _, _, words) in zip(result.failed, OVER, strict=True):
        assert words in failure.message, failure.message
    with read_transaction(engine) as connection:
        for number in range(len(OVER)):
            assert get_profile(connection, project.id, f"over-{number}") is None
            fine = get_profile(connection, project.id, f"fine-{number}")
            assert fine is not None and fine.properties == {"plan": "pro"}


def test_updates_at_a_limit_are_stored(
    service: IngestionService, project: Project, engine: Engine
) -> None:
    batch = [_update(project, f"edge-{n}", op, value) for n, (op, value) in enumerate(WITHIN)]
    result = service.engage(batch)
    assert (result.imported, result.failed) == (len(WITHIN), [])
    with read_transaction(engine) as connection:
        for number, (_, value) in enumerate(WITHIN):
            found = get_profile(connection, project.id, f"edge-{number}")
            assert found is not None and set(found.properties) == set(value)


def test_group_updates_keep_the_same_limits(service: IngestionService, project: Project) -> None:
    base = {"$token": project.token, "$group_key": "company"}
    result = service.groups(
        [
            {**base, "$group_id": "a", "$set": {"deep": nested(4)}},
            {**base, "$group_id": "b", "$set": {"plan": "pro"}},
            {**base, "$group_id": "c", "$union": {"n" * 256: [1]}},
        ]
    )
    assert result.imported == 1
    assert [(f.index, f.field) for f in result.failed] == [(0, "$set.deep"), (2, "$union")]


def test_a_100k_property_set_over_http_is_refused_and_the_batch_kept(
    live_server: LiveServer, project: Project, engine: Engine
) -> None:
    """The finding as reported: a 100,000-property $set was stored."""
    huge = _update(project, "flood", "$set", {f"p{i}": i for i in range(100_000)})
    fine = _update(project, "fine", "$set", {"plan": "pro"})
    with live_server.client() as client:
        reply = client.post(
            "/engage",
            params={"verbose": "1"},
            content=orjson.dumps([huge, fine]),
            headers={"Content-Type": "application/json"},
        )
    assert reply.status_code == 400
    body = reply.json()
    assert body["num_records_imported"] == 1
    assert body["failed_records"] == [
        {
            "index": 0,
            "insert_id": None,
            "field": "$set",
            "message": "'$set' names 100000 properties; a profile holds at most 2000, "
            "so send fewer",
        }
    ]
    with read_transaction(engine) as connection:
        assert get_profile(connection, project.id, "flood") is None
        assert get_profile(connection, project.id, "fine") is not None


def _props(prefix: str, count: int) -> dict[str, int]:
    return {f"{prefix}{i}": i for i in range(count)}


def test_an_update_taking_a_stored_profile_past_2000_properties_is_refused(
    service: IngestionService, project: Project, engine: Engine
) -> None:
    """Each update names fewer than 2,000 properties, but the profile holds at most 2,000."""
    result = service.engage(
        [
            _update(project, "wide", "$set", _props("a", 1500)),
            _update(project, "wide", "$set", _props("b", 501)),  # 2,001: refused
            _update(project, "fine", "$set", {"plan": "pro"}),
            _update(project, "wide", "$set_once", _props("c", 500)),  # 2,000: stored
            _update(project, "wide", "$set", {"a0": "changed"}),  # no new property: stored
            _update(project, "wide", "$union", {"d": [1]}),  # 2,001: refused
        ]
    )
    assert result.imported == 4
    assert [(f.index, f.field) for f in result.failed] == [(1, "$set"), (5, "$union")]
    assert "at most 2,000" in result.failed[0].message
    with read_transaction(engine) as connection:
        wide = get_profile(connection, project.id, "wide")
        fine = get_profile(connection, project.id, "fine")
    assert wide is not None and len(wide.properties) == MAX_STORED_PROPERTIES
    assert wide.properties["a0"] == "changed" and "b0" not in wide.properties
    assert fine is not None and fine.properties == {"plan": "pro"}
    # a later request is held to what is stored, and $unset makes room again
    more = service.engage(
        [
            _update(project, "wide", "$set", {"new": 1}),
            _update(project, "wide", "$unset", ["a1"]),
            _update(project, "wide", "$set", {"new": 1}),
        ]
    )
    assert (more.imported, [f.index for f in more.failed]) == (2, [0])


def test_an_update_taking_a_stored_profile_past_1_mb_is_refused(
    service: IngestionService, project: Project, engine: Engine
) -> None:
    piece = "x" * (200 * KB)
    batch = [_update(project, "big", "$set", {f"p{n}": piece}) for n in range(6)]
    batch.insert(3, _update(project, "fine", "$set", {"plan": "pro"}))
    result = service.engage(batch)
    assert [(f.index, f.field) for f in result.failed] == [(6, "$set")]  # p5: past 1 MB
    assert "at most 1 MB" in result.failed[0].message
    with read_transaction(engine) as connection:
        big = get_profile(connection, project.id, "big")
    assert big is not None and set(big.properties) == {f"p{n}" for n in range(5)}
    assert len(orjson.dumps(big.properties)) <= MAX_STORED_BYTES
    base = {"$token": project.token, "$group_key": "company", "$group_id": "g"}
    groups = service.groups([{**base, "$set": {f"p{n}": piece}} for n in range(6)])
    assert (groups.imported, [f.index for f in groups.failed]) == (5, [5])
