"""The event store: bulk insert with dedup (R-ING-3) and the NDJSON export read."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.domain.events import Event
from cohortsync.storage.tables import events, identities
from cohortsync.warehouse.sql import bulk_insert_ignoring

EVENT_COLUMNS = (
    "project_id",
    "time",
    "event",
    "distinct_id",
    "insert_id",
    "dedup_hash",
    "properties",
)


def event_row(project_id: int, event: Event) -> tuple[Any, ...]:
    """The DB-API parameter tuple of one event, in EVENT_COLUMNS order."""
    return (
        project_id,
        event.time_ms,
        event.name,
        event.distinct_id,
        event.insert_id,
        event.dedup_hash,
        event.properties,
    )


def event_rows(project_id: int, batch: Sequence[Event]) -> list[tuple[Any, ...]]:
    """The DB-API parameter tuples for ``batch``."""
    return [event_row(project_id, e) for e in batch]


def insert_rows(connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert prepared rows, skipping any whose dedup key is already stored."""
    bulk_insert_ignoring(connection, "events", EVENT_COLUMNS, rows)


def export_events(
    connection: Connection,
    project_id: int,
    from_ms: int,
    to_ms: int,
    event_name: str | None = None,
    chunk: int = 2000,
) -> Iterator[bytes]:
    """Stored events in [from_ms, to_ms), oldest first, each one NDJSON line with the canonical
    distinct_id (the id as sent is kept as ``$distinct_id_before_identity``)."""
    canonical = sa.func.coalesce(identities.c.canonical_id, events.c.distinct_id)
    query = (
        sa.select(
            events.c.event,
            events.c.time,
            events.c.distinct_id,
            events.c.insert_id,
            events.c.properties,
            canonical.label("canonical_id"),
        )
        .select_from(
            events.outerjoin(
                identities,
                sa.and_(
                    identities.c.project_id == events.c.project_id,
                    identities.c.distinct_id == events.c.distinct_id,
                ),
            )
        )
        .where(events.c.project_id == project_id, events.c.time >= from_ms, events.c.time < to_ms)
        .order_by(events.c.time, events.c.id)
    )
    if event_name is not None:
        query = query.where(events.c.event == event_name)
    result = connection.execution_options(stream_results=True, yield_per=chunk).execute(query)
    for row in result:
        properties = dict(row.properties)
        properties["distinct_id"] = row.canonical_id
        properties["time"] = row.time
        properties["$insert_id"] = row.insert_id
        if row.canonical_id != row.distinct_id:
            properties["$distinct_id_before_identity"] = row.distinct_id
        yield orjson.dumps({"event": row.event, "properties": properties}) + b"\n"


def count_events(connection: Connection, project_id: int) -> int:
    """How many events the project has stored."""
    query = sa.select(sa.func.count()).select_from(events).where(events.c.project_id == project_id)
    return int(connection.execute(query).scalar_one())
