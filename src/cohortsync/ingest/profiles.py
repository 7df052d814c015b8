"""Ingesting profile (/engage) and group profile (/groups) updates (R-ING-4), each within the
limits Mixpanel documents for profiles (:mod:`cohortsync.ingest.profile_limits`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine

from cohortsync.domain.accounts import Project
from cohortsync.domain.errors import RecordError
from cohortsync.domain.events import check_id
from cohortsync.domain.profiles import (
    GROUP_OPERATIONS,
    PROFILE_OPERATIONS,
    ProfileUpdate,
    check_operation,
)
from cohortsync.ingest import storable
from cohortsync.ingest.profile_limits import check_update
from cohortsync.ingest.results import FailedRecord, IngestResult
from cohortsync.storage.database import write_transaction
from cohortsync.warehouse.profiles import GroupUpdate, Refused, apply_group_updates, apply_updates

U = TypeVar("U")


def _operation(record: dict[str, Any], allowed: tuple[str, ...]) -> tuple[str, Any]:
    """The single operation of an update record, validated."""
    named = [k for k in record if k in allowed]
    unknown = [k for k in record if k in PROFILE_OPERATIONS and k not in allowed]
    if unknown:
        raise RecordError(unknown[0], f"{unknown[0]!r} is not supported here; use one of {allowed}")
    if not named:
        raise RecordError("operation", f"no operation in the update; expected one of {allowed}")
    if len(named) > 1:
        raise RecordError(named[1], f"one operation per update, got {named}; send separate updates")
    operation = named[0]
    check_operation(operation, record[operation], allowed)
    check_update(operation, record[operation])
    return operation, record[operation]


def _id(record: dict[str, Any], field: str) -> str:
    """A required id field (``$distinct_id``, ``$group_key``, ``$group_id``), validated."""
    if field not in record:
        raise RecordError(field, f"'{field}' is required")
    value = check_id(record[field], field)
    storable.check_text(value, field)
    return value


def _failed(index: int, error: RecordError) -> FailedRecord:
    return FailedRecord(index, None, error.field, error.message)


def parse_profile_update(record: Any) -> ProfileUpdate:
    """Validate one /engage record."""
    if not isinstance(record, dict):
        raise RecordError("update", "each update must be a JSON object")
    distinct_id = _id(record, "$distinct_id")
    operation, value = _operation(record, PROFILE_OPERATIONS)
    return ProfileUpdate(distinct_id, operation, value)


def parse_group_update(record: Any) -> GroupUpdate:
    """Validate one /groups record."""
    if not isinstance(record, dict):
        raise RecordError("update", "each update must be a JSON object")
    key = _id(record, "$group_key")
    group = _id(record, "$group_id")
    operation, value = _operation(record, GROUP_OPERATIONS)
    return GroupUpdate(key, group, operation, value)


def _ingest_updates(
    engine: Engine,
    project: Project,
    records: Sequence[tuple[int, Any]],
    parse: Callable[[Any], U],
    apply: Callable[[Connection, int, Sequence[U], int], Refused],
    now_ms: int,
    within: Callable[[Connection], None] | None = None,
) -> IngestResult:
    result = IngestResult()
    updates: list[U] = []
    indexes: list[int] = []  # of each update's record
    for index, record in records:
        try:
            updates.append(parse(record))
            indexes.append(index)
        except RecordError as error:
            result.failed.append(_failed(index, error))
    refused: Refused = []
    with write_transaction(engine) as connection:
        if updates:
            refused = apply(connection, project.id, updates, now_ms)
        if within is not None:
            within(connection)
    result.failed.extend(_failed(indexes[position], error) for position, error in refused)
    result.failed.sort(key=lambda failed: failed.index)
    result.imported = len(updates) - len(refused)
    return result


def ingest_profile_updates(
    engine: Engine,
    project: Project,
    records: Sequence[tuple[int, Any]],
    *,
    now_ms: int,
    within: Callable[[Connection], None] | None = None,
) -> IngestResult:
    """Apply the valid /engage updates in arrival order; report the rest by index."""
    return _ingest_updates(
        engine, project, records, parse_profile_update, apply_updates, now_ms, within
    )


def ingest_group_updates(
    engine: Engine, project: Project, records: Sequence[tuple[int, Any]], *, now_ms: int
) -> IngestResult:
    """Apply the valid /groups updates in arrival order; report the rest by index."""
    return _ingest_updates(
        engine, project, records, parse_group_update, apply_group_updates, now_ms
    )
