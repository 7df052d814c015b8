"""Ingesting a batch of events: validate each, derive identities, store valid ones once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Connection, Engine

from cohortsync.domain.accounts import Project
from cohortsync.domain.errors import RecordError
from cohortsync.domain.events import Event, parse_event
from cohortsync.domain.identity import (
    IDENTITY_EVENTS,
    IdentityLink,
    IdentityMode,
    event_distinct_id,
    original_link,
    simplified_link,
)
from cohortsync.ingest.results import IngestResult, failure
from cohortsync.storage.database import write_transaction
from cohortsync.warehouse import identities, profiles
from cohortsync.warehouse.events import insert_events
from cohortsync.warehouse.sql import lock_project

# Devices already linked to a user never change (simplified ID merge): skip re-checking them.
_LINKED_CACHE_LIMIT = 1_000_000


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
        result = IngestResult()
        valid: list[tuple[int, Any, Event]] = []
        device_links: list[IdentityLink] = []
        cluster_links: list[tuple[int, Any, IdentityLink]] = []
        mode = project.identity_mode
        simplified = mode is IdentityMode.SIMPLIFIED
        known_devices = self._linked_devices.setdefault(project.id, set())
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
                if simplified:
                    device = props.get("$device_id")
                    if device is not None and str(device) not in known_devices:
                        change = simplified_link(props)
                        if change is not None:
                            device_links.append(change)
                elif event.name in IDENTITY_EVENTS:
                    change = original_link(event.name, props)
                    if change is not None:
                        cluster_links.append((index, record, change))
            except RecordError as error:
                result.failed.append(failure(index, record, error))
                continue
            valid.append((index, record, event))

        with write_transaction(self._engine) as connection:
            if device_links or cluster_links:
                lock_project(connection, project.id, profiles.IDENTITY_LOCK)
            merges = identities.link_many(connection, project.id, device_links)
            rejected: set[int] = set()
            for index, record, change in cluster_links:
                try:
                    merges.extend(identities.link(connection, project.id, change))
                except RecordError as error:
                    rejected.add(index)
                    result.failed.append(failure(index, record, error))
            profiles.fold(connection, project.id, merges, now_ms)
            stored = [e for i, _, e in valid if i not in rejected]
            insert_events(connection, project.id, stored)
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
