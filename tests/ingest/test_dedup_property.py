"""Property: however often and in whatever order events arrive, each dedup key is stored once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from cohortsync.clock import FrozenClock, SystemClock
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.projects import ProjectService
from cohortsync.storage.database import read_transaction
from cohortsync.storage.tables import events
from tests.conftest import NOW, NOW_MS

keys = st.tuples(
    st.sampled_from(["Open", "Buy"]),
    st.sampled_from([NOW_MS - 3_600_000, NOW_MS - 1000, NOW_MS - 999]),
    st.sampled_from(["u1", "u2", "$device:d1"]),
    st.sampled_from(["a", "b", "c-1"]),
)
arrivals = st.lists(
    st.tuples(keys, st.integers(0, 5)),  # the same key may carry different properties
    min_size=1,
    max_size=60,
)


def _record(key: tuple[str, int, str, str], extra: int) -> dict[str, Any]:
    name, time_ms, distinct_id, insert_id = key
    return {
        "event": name,
        "properties": {
            "time": time_ms,
            "distinct_id": distinct_id,
            "$insert_id": insert_id,
            "n": extra,
        },
    }


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(arrivals=arrivals, cuts=st.lists(st.integers(1, 20), max_size=8), data=st.data())
def test_each_dedup_key_is_stored_once(
    fresh_engine: Callable[[], Engine],
    arrivals: list[tuple[tuple[str, int, str, str], int]],
    cuts: list[int],
    data: st.DataObject,
) -> None:
    engine = fresh_engine()
    project, _ = ProjectService(engine, SystemClock()).ensure_default()
    service = IngestionService(engine, FrozenClock(NOW))
    records = [_record(key, extra) for key, extra in arrivals]
    # Send in random batches, some batches sent twice (client retries), in a shuffled order.
    batches: list[list[dict[str, Any]]] = []
    start = 0
    for size in cuts:
        batches.append(records[start : start + size])
        start += size
    batches.append(records[start:])
    retried = data.draw(st.lists(st.sampled_from(range(len(batches))), max_size=3))
    order = data.draw(st.permutations([*range(len(batches)), *retried]))
    for position in order:
        if batches[position]:
            result = service.import_events(project, batches[position])
            assert not result.failed
    with read_transaction(engine) as connection:
        stored = connection.execute(
            sa.select(events.c.event, events.c.time, events.c.distinct_id, events.c.insert_id)
        ).all()
    expected = {key for key, _ in arrivals}
    assert len(stored) == len(expected)
    assert {tuple(row) for row in stored} == expected
