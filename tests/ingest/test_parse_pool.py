"""A helper process prepares an /import body exactly as this process would: its batch (rows
packed as MessagePack on the way back, refusals, identity links) arrives whole."""

from __future__ import annotations

import gzip
import pickle
from typing import Any

import orjson

from cohortsync.domain.events import MIN_EVENT_TIME_MS
from cohortsync.domain.identity import IdentityLink, IdentityMode
from cohortsync.ingest.events import PreparedBatch
from cohortsync.ingest.parse_pool import ImportBody, ParsePool, prepare_body
from cohortsync.ingest.results import FailedRecord
from tests.conftest import NOW_MS
from tests.helpers import run_async


def _event(i: int) -> dict[str, Any]:
    props = {"distinct_id": f"u{i}", "time": NOW_MS - i, "$device_id": f"d{i}", "$user_id": f"u{i}"}
    return {"event": "Open", "properties": {**props, "plan": "pro", "n": [i, {"é": 1.5}]}}


def _body(records: list[Any], mode: IdentityMode) -> ImportBody:
    raw = gzip.compress(orjson.dumps(records))
    return ImportBody(raw, "application/json", "gzip", 3, mode, NOW_MS, MIN_EVENT_TIME_MS)


def test_a_batch_survives_pickling() -> None:
    batch = PreparedBatch(
        3,
        rows=[(3, NOW_MS, "Open", "u1", "i-1", -(2**63), '{"é":1}')],
        indexes=[0],
        failed=[FailedRecord(1, "i-2", "event", "'event' is required")],
        device_links=[("u1", "d1")],
        cluster_links=[(2, "i-3", IdentityLink(into="u", ids=("a",), exclusive=False))],
    )
    back = pickle.loads(pickle.dumps(batch))
    assert back == batch
    assert all(type(row) is tuple for row in back.rows)


def test_a_helper_process_prepares_as_this_one_does() -> None:
    clean = [_event(i) for i in range(50)]
    mixed = [*clean[:10], {"event": "", "properties": {"distinct_id": "u"}}, *clean[10:]]
    identity = [
        *clean[:5],
        {"event": "$identify", "properties": {"$identified_id": "u1", "$anon_id": "a1"}},
    ]
    bodies = [
        _body(clean, IdentityMode.SIMPLIFIED),
        _body(mixed, IdentityMode.SIMPLIFIED),
        _body(identity, IdentityMode.ORIGINAL),
    ]
    pool = ParsePool(1)
    try:
        for body in bodies:
            expected = prepare_body(body)
            assert run_async(pool.prepare_async(body)) == expected
    finally:
        pool.close()
    assert len(prepare_body(bodies[1]).failed) == 1
