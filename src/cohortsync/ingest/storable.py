"""Text every engine can store. PostgreSQL refuses the NUL character (U+0000) in ``text`` and
``jsonb`` alike, where SQLite takes it: a record carrying one is refused by its position, on both
engines, before it reaches a query, and the rest of its batch is stored."""

from __future__ import annotations

from typing import Any

from cohortsync.domain.errors import RecordError
from cohortsync.domain.events import Event

NUL = "\x00"
# How JSON writes the character: a document holding this may carry one (or the six characters
# ``\u0000`` themselves, written ``\\u0000``; the exact check below tells them apart).
_ESCAPED = "\\u0000"
_ESCAPED_BYTES = _ESCAPED.encode()


def _message(field: str) -> str:
    return f"'{field}' contains the NUL character (\\u0000), which cannot be stored; remove it"


def check_text(value: str, field: str) -> None:
    """Refuse a string holding a NUL."""
    if NUL in value:
        raise RecordError(field, _message(field))


def holds_nul(value: Any) -> bool:
    """Whether any string or key inside ``value`` holds a NUL (iteratively: parsed JSON may be
    nested deeper than Python's recursion limit)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, dict):
            if any(isinstance(key, str) and NUL in key for key in item):
                return True
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def check_value(value: Any, field: str) -> None:
    """Refuse a JSON value when any string or key inside it holds a NUL."""
    if holds_nul(value):
        raise RecordError(field, _message(field))


def check_document(document: str | bytes, value: Any, field: str) -> None:
    """Refuse ``value`` (whose JSON is ``document``) when a string or key of it holds a NUL.
    The JSON is searched first, so the common case costs one substring search."""
    suspect = _ESCAPED in document if isinstance(document, str) else _ESCAPED_BYTES in document
    if suspect and holds_nul(value):
        raise RecordError(field, _message(field))


def check_event(event: Event, properties: dict[str, Any]) -> None:
    """Refuse a validated event whose name, distinct_id or properties hold a NUL
    (``properties`` is what ``event.properties`` was written from). Three substring searches in
    the common case: this runs for every event."""
    if NUL in event.name:
        raise RecordError("event", _message("event"))
    if NUL in event.distinct_id:
        raise RecordError("properties.distinct_id", _message("properties.distinct_id"))
    if _ESCAPED in event.properties and holds_nul(properties):
        raise RecordError("properties", _message("properties"))


def plainly_storable(event: Event) -> bool:
    """Whether :func:`check_event` passes ``event`` on its three substring searches alone: no
    NUL in its name or distinct_id, nor anything that may be one in its properties."""
    return (
        NUL not in event.name and NUL not in event.distinct_id and _ESCAPED not in event.properties
    )
