"""Property: the bulk insert of event rows (multi-row statements on SQLite) stores the same rows,
with the same ids, skipping the same duplicates, as inserting the rows one statement at a time."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Connection, Engine

from cohortsync.clock import SystemClock
from cohortsync.services.projects import ProjectService
from cohortsync.storage.tables import events
from cohortsync.warehouse.events import EVENT_COLUMNS, insert_rows
from cohortsync.warehouse.sql import insert_ignoring_duplicates

# Few keys, so rows collide with each other (in one statement and across statements) and with
# rows stored before.
keys = st.tuples(st.integers(1, 4), st.integers(0, 40))
row = st.tuples(keys, st.text(alphabet="abé ", max_size=3))


def _row(project_id: int, key: tuple[int, int], text: str) -> tuple[Any, ...]:
    time, dedup_hash = key
    name = f"e{dedup_hash % 3}"
    return (project_id, time, name, f"u{time}é", f"i{dedup_hash}", dedup_hash, f'{{"t":"{text}"}}')


def _one_at_a_time(connection: Connection, stored: list[tuple[Any, ...]]) -> None:
    for row in stored:
        insert_ignoring_duplicates(
            connection,
            events,
            [{**dict(zip(EVENT_COLUMNS, row, strict=True)), "properties": {"t": row[6][6:-2]}}],
        )


def _stored(connection: Connection) -> list[tuple[Any, ...]]:
    """The stored rows in the order of their ids (PostgreSQL does not roll its sequences back,
    so the ids themselves differ between the two runs)."""
    query = sa.select(*(events.c[c] for c in EVENT_COLUMNS)).order_by(events.c.id)
    return [tuple(r) for r in connection.execute(query)]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# The batch spans several SQLite statements (71 event rows each).
@given(before=st.lists(row, max_size=40), batch=st.lists(row, min_size=60, max_size=250))
def test_bulk_insert_stores_what_single_inserts_store(
    engine: Engine,
    before: list[tuple[tuple[int, int], str]],
    batch: list[tuple[tuple[int, int], str]],
) -> None:
    project, _ = ProjectService(engine, SystemClock()).ensure_default()
    first = [_row(project.id, key, text) for key, text in before]
    second = [_row(project.id, key, text) for key, text in batch]
    outcomes = []
    for bulk in (False, True):
        with engine.connect() as connection:
            transaction = connection.begin()
            _one_at_a_time(connection, first)
            if bulk:
                insert_rows(connection, second)
            else:
                _one_at_a_time(connection, second)
            outcomes.append(_stored(connection))
            transaction.rollback()
    assert outcomes[0] == outcomes[1]
