"""Storing normalised partner events: each attributed to its user through the partner's keys in
reverse, validated like any event, and deduplicated by the payload (a replay is stored once,
whoever it is attributed to by then)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.engine import Connection, Engine

from cohortsync.domain.errors import RecordError
from cohortsync.domain.events import MIN_EVENT_TIME_MS, dedup_hash, parse_event
from cohortsync.ingest import storable
from cohortsync.ingest.partners.base import ById, ByProperty, PartnerEvent
from cohortsync.ingest.results import FailedRecord
from cohortsync.storage.database import write_transaction
from cohortsync.warehouse.events import event_row, insert_rows
from cohortsync.warehouse.profile_keys import known_ids, profiles_by_property
from cohortsync.warehouse.receipts import first_received, forget_before

# An event without a time of its own is stored at its first receipt; the same payload again
# within this window is a partner's retry (stored once), later it is a new delivery.
DEFAULT_REPLAY_WINDOW = timedelta(hours=1)
_PRUNE_EVERY_S = 3600


def check_partner_event(event: PartnerEvent) -> None:
    """Refuse an event whose name, keys or properties hold text no engine stores alike (a NUL):
    its keys are looked up before it is validated as an event."""
    storable.check_text(event.name, "event")
    for key in event.keys:
        storable.check_text(key.value, "user")
    storable.check_text(event.fallback_id, "user")
    storable.check_value(event.properties, "properties")


def attribute(connection: Connection, project_id: int, batch: Sequence[PartnerEvent]) -> list[str]:
    """The distinct_id each event is stored under: the first of its keys that finds a known
    user, else the event's fallback id (which creates no profile).

    Keys are looked up rank by rank, and only for events no earlier key placed: most events
    are placed by their first key, so most calls cost one query.
    """
    found: list[str | None] = [None] * len(batch)
    rank = 0
    while True:
        asked = [i for i, e in enumerate(batch) if found[i] is None and rank < len(e.keys)]
        if not asked:
            break
        ids = {k.value for i in asked if isinstance(k := batch[i].keys[rank], ById)}
        wanted: dict[str, set[str]] = defaultdict(set)
        for i in asked:
            key = batch[i].keys[rank]
            if isinstance(key, ByProperty):
                wanted[key.prop].add(key.value)
        owners = {
            prop: profiles_by_property(connection, project_id, prop, values)
            for prop, values in wanted.items()
        }
        known = known_ids(connection, project_id, ids) if ids else set()
        for i in asked:
            key = batch[i].keys[rank]
            if isinstance(key, ById):
                found[i] = key.value if key.value in known else None
            else:
                found[i] = owners[key.prop].get(key.value)
        rank += 1
    return [owner or event.fallback_id for owner, event in zip(found, batch, strict=True)]


class PartnerEventStore:
    """Stores one integration's partner events."""

    def __init__(self, engine: Engine, replay_window: timedelta = DEFAULT_REPLAY_WINDOW) -> None:
        self._engine = engine
        self._replay_window_ms = int(replay_window.total_seconds() * 1000)
        self._pruned_at = 0.0

    def store(
        self,
        project_id: int,
        integration_id: int,
        source: str,
        batch: Sequence[tuple[int, PartnerEvent]],
        now_ms: int,
    ) -> tuple[int, list[FailedRecord]]:
        """Store the ``(index, event)`` pairs; returns how many were valid and the failures."""
        events = [event for _, event in batch]
        failed: list[FailedRecord] = []
        rows = []
        with write_transaction(self._engine) as connection:
            owners = attribute(connection, project_id, events)
            received = self._receipts(connection, integration_id, events, now_ms)
            for (index, event), owner in zip(batch, owners, strict=True):
                when = event.time_ms if event.time_ms is not None else received[event.insert_id]
                record = {
                    "event": event.name,
                    "properties": {**event.properties, "time": when, "$insert_id": event.insert_id},
                }
                try:
                    parsed = parse_event(
                        record, now_ms=now_ms, oldest_ms=MIN_EVENT_TIME_MS, distinct_id=owner
                    )
                except RecordError as error:
                    failed.append(FailedRecord(index, event.insert_id, error.field, error.message))
                    continue
                # The dedup key leaves the user out: a replay attributed differently is the same.
                parsed = parsed._replace(
                    dedup_hash=dedup_hash(parsed.name, f"$source:{source}", parsed.insert_id)
                )
                rows.append(event_row(project_id, parsed))
            insert_rows(connection, rows)
        return len(rows), failed

    def _receipts(
        self,
        connection: Connection,
        integration_id: int,
        events: Sequence[PartnerEvent],
        now_ms: int,
    ) -> dict[str, int]:
        """The first receipt time of each event that has no time of its own."""
        untimed = sorted({e.insert_id for e in events if e.time_ms is None})
        if not untimed:
            return {}
        self._prune(connection, now_ms)
        return first_received(connection, integration_id, untimed, now_ms, self._replay_window_ms)

    def _prune(self, connection: Connection, now_ms: int) -> None:
        """Forget receipts older than any retry (at most once an hour per process)."""
        if time.monotonic() - self._pruned_at < _PRUNE_EVERY_S:
            return
        self._pruned_at = time.monotonic()
        cutoff = now_ms - self._replay_window_ms
        forget_before(connection, cutoff)
