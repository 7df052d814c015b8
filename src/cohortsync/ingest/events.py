"""Ingesting a batch of events: validate each, derive identities, store valid ones once.

A clean batch is validated by compiled decoders (:mod:`cohortsync.ingest.decoders`) and
prepared in one pass; a batch they refuse goes through the per-record checks, which name each
record's fault. Both make the same rows of what both take.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy.engine import Connection, Engine

from cohortsync.domain.accounts import Project
from cohortsync.domain.errors import RecordError
from cohortsync.domain.events import (
    COLUMN_PROPERTIES,
    check_insert_id,
    event_time,
    parse_event,
    plain_id,
    stored_event,
)
from cohortsync.domain.identity import (
    DEVICE_PREFIX,
    IDENTITY_EVENTS,
    IdentityLink,
    IdentityMode,
    event_distinct_id,
    original_link,
    simplified_link,
)
from cohortsync.ingest import storable
from cohortsync.ingest.decoders import EventIn, events_from_records
from cohortsync.ingest.results import FailedRecord, IngestResult, failure
from cohortsync.storage.database import write_transaction
from cohortsync.warehouse import identities, profiles
from cohortsync.warehouse.events import event_row, insert_rows
from cohortsync.warehouse.sql import lock_project

# Devices already linked to a user never change (simplified ID merge): skip re-checking them.
_LINKED_CACHE_LIMIT = 200_000


@dataclass(slots=True)
class PreparedBatch:
    """A validated batch, not yet stored: what :func:`prepare_events` hands to the store.

    Pure data, so it can be prepared in another process.
    """

    project_id: int
    # Plain tuples, cheap to send between processes: event rows ready for the store, the
    # request index of each row, and (user, device) pairs of simplified ID merge.
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    failed: list[FailedRecord] = field(default_factory=list)
    device_links: list[tuple[str, str]] = field(default_factory=list)
    cluster_links: list[tuple[int, str, IdentityLink]] = field(default_factory=list)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (on the way back from a helper process) with its rows as one MessagePack
        string: msgspec packs them several times faster than pickle packs tuples."""
        rows = _ROWS_ENCODER.encode(self.rows)
        links = (self.device_links, self.cluster_links)
        return _unpickled, (self.project_id, rows, self.indexes, self.failed, *links)


# The types of an event row (warehouse.events.EVENT_COLUMNS, as event_row makes it).
_Row = tuple[int, int, str, str, str, int, str]
_ROWS_ENCODER = msgspec.msgpack.Encoder()
_ROWS_DECODER = msgspec.msgpack.Decoder(list[_Row])


def _unpickled(project_id: int, rows: bytes, *rest: Any) -> PreparedBatch:
    return PreparedBatch(project_id, _ROWS_DECODER.decode(rows), *rest)


def _link_device(props: dict[str, Any], seen: set[str], links: list[tuple[str, str]]) -> None:
    """Simplified ID merge: the (user, device) pair of an event carrying both, the first time
    its device appears in the batch (RecordError for an id that is no id)."""
    device = props.get("$device_id")
    if device is None or (type(device) is str and device in seen):
        return  # no device, or its link was made already (and its ids are not checked again)
    user = props.get("$user_id")
    if plain_id(device) and plain_id(user):  # what simplified_link makes of them, cheaply
        if device not in seen:
            seen.add(device)
            links.append((user, device))
    elif str(device) not in seen:
        change = simplified_link(props)
        if change is not None:
            seen.add(change.ids[1])
            links.append((change.into, change.ids[1]))


def prepare_each(
    records: Sequence[tuple[int, Any]],
    project_id: int,
    mode: IdentityMode,
    *,
    now_ms: int,
    oldest_ms: int,
) -> PreparedBatch:
    """Validate ``(index, record)`` pairs one by one, saying why of each refused one, and
    derive their identity links (no I/O)."""
    batch = PreparedBatch(project_id)
    simplified = mode is IdentityMode.SIMPLIFIED
    devices_seen: set[str] = set()
    for index, record in records:
        try:
            if type(record) is not dict:
                raise RecordError("event", "each record must be a JSON object")
            props = record.get("properties")
            if type(props) is not dict:
                props = {}
            given = props.get("distinct_id")
            event = parse_event(
                record,
                now_ms=now_ms,
                oldest_ms=oldest_ms,
                distinct_id=given
                if given is not None
                else event_distinct_id(record.get("event"), props, mode),
            )
            storable.check_event(event, props)
            if simplified:
                _link_device(props, devices_seen, batch.device_links)
            elif event.name in IDENTITY_EVENTS:
                change = original_link(event.name, props)
                if change is not None:
                    batch.cluster_links.append((index, event.insert_id, change))
        except RecordError as error:
            batch.failed.append(failure(index, record, error))
            continue
        batch.rows.append(event_row(project_id, event))
        batch.indexes.append(index)
    return batch


def prepare_decoded(
    decoded: Sequence[EventIn],
    indexes: Sequence[int],
    project_id: int,
    mode: IdentityMode,
    *,
    now_ms: int,
    oldest_ms: int,
) -> PreparedBatch | None:
    """The batch of events the compiled decoders took (``indexes``: their positions in the
    request), prepared as :func:`prepare_each` would; or None when one of them is refused or
    unusual, for :func:`prepare_each` to say why. Changes the events' properties."""
    batch = PreparedBatch(project_id, indexes=list(indexes))
    rows = batch.rows
    simplified = mode is IdentityMode.SIMPLIFIED
    devices_seen: set[str] = set()
    try:
        for index, record in zip(batch.indexes, decoded, strict=True):
            name, props = record.event, record.properties
            given = props.get("distinct_id")
            distinct_id = given if given is not None else event_distinct_id(name, props, mode)
            if not plain_id(distinct_id):
                return None
            time_ms = event_time(props.get("time"), now_ms=now_ms, oldest_ms=oldest_ms)
            change = None
            if simplified:
                _link_device(props, devices_seen, batch.device_links)
            elif name in IDENTITY_EVENTS:
                change = original_link(name, props)
            insert_id = props.get("$insert_id")
            if insert_id is not None:
                insert_id = check_insert_id(insert_id)
            for column in COLUMN_PROPERTIES:
                props.pop(column, None)
            event = stored_event(name, time_ms, distinct_id, insert_id, props)
            if not storable.plainly_storable(event):
                return None
            if change is not None:
                batch.cluster_links.append((index, event.insert_id, change))
            rows.append(event_row(project_id, event))
    except RecordError:
        return None
    return batch


def prepare_events(
    records: Sequence[tuple[int, Any]],
    project_id: int,
    mode: IdentityMode,
    *,
    now_ms: int,
    oldest_ms: int,
) -> PreparedBatch:
    """Validate ``(index, record)`` pairs and derive their identity links (no I/O).

    A clean batch is checked by the compiled decoders and prepared in one pass; any other goes
    through :func:`prepare_each`, whose refusals name each record's fault.
    """
    decoded = events_from_records([record for _, record in records])
    if decoded is not None:
        indexes = [index for index, _ in records]
        batch = prepare_decoded(
            decoded, indexes, project_id, mode, now_ms=now_ms, oldest_ms=oldest_ms
        )
        if batch is not None:
            return batch
    return prepare_each(records, project_id, mode, now_ms=now_ms, oldest_ms=oldest_ms)


class EventIngestor:
    """Validates and stores event batches for /track, /import and file imports."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._linked_devices: dict[int, set[str]] = {}

    def ingest(
        self,
        project: Project,
        records: Sequence[tuple[int, Any]],
        *,
        now_ms: int,
        oldest_ms: int,
        within: Callable[[Connection], None] | None = None,
    ) -> IngestResult:
        """Store the valid ``(index, record)`` pairs; report the rest by index.

        ``within`` runs in the same transaction (file imports save their checkpoint there).
        """
        batch = prepare_events(
            records, project.id, project.identity_mode, now_ms=now_ms, oldest_ms=oldest_ms
        )
        return self.store(project, batch, now_ms=now_ms, within=within)

    def store(
        self,
        project: Project,
        batch: PreparedBatch,
        *,
        now_ms: int,
        within: Callable[[Connection], None] | None = None,
    ) -> IngestResult:
        """Store a prepared batch in one transaction: identity links first, then the events."""
        result = IngestResult(failed=list(batch.failed))
        known = self._linked_devices.setdefault(project.id, set())
        device_links = [
            IdentityLink(into=user, ids=(f"{DEVICE_PREFIX}{device}", device), exclusive=True)
            for user, device in batch.device_links
            if device not in known
        ]
        with write_transaction(self._engine) as connection:
            if device_links or batch.cluster_links:
                lock_project(connection, project.id, profiles.IDENTITY_LOCK)
            merges = identities.link_many(connection, project.id, device_links)
            rejected: set[int] = set()
            for index, insert_id, change in batch.cluster_links:
                try:
                    merges.extend(identities.link(connection, project.id, change))
                except RecordError as error:
                    rejected.add(index)
                    result.failed.append(FailedRecord(index, insert_id, error.field, error.message))
            profiles.fold(connection, project.id, merges, now_ms)
            stored = batch.rows
            if rejected:
                stored = [
                    r for i, r in zip(batch.indexes, batch.rows, strict=True) if i not in rejected
                ]
            insert_rows(connection, stored)
            if within is not None:
                within(connection)
        result.imported = len(stored)
        result.failed.sort(key=lambda f: f.index)
        self._remember(project.id, device_links)
        return result

    def _remember(self, project_id: int, links: Sequence[IdentityLink]) -> None:
        known = self._linked_devices.setdefault(project_id, set())
        if len(known) > _LINKED_CACHE_LIMIT:
            known.clear()
        known.update(link.ids[1] for link in links)  # ids: ("$device:<id>", "<id>")
