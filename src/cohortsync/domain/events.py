"""Event validation and normalisation, following Mixpanel's documented limits (R-ING-2)."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any, NamedTuple, TypeGuard

import orjson

from cohortsync.domain.errors import RecordError

MAX_RECORDS_PER_REQUEST = 2000
MAX_REQUEST_BYTES = 10 * 1024 * 1024
MAX_EVENT_BYTES = 1024 * 1024
MAX_PROPERTIES = 255  # an event must have fewer than this many properties
MAX_NESTED_KEYS = 255
MAX_LIST_ITEMS = 255
MAX_NESTING_DEPTH = 3
MAX_EVENT_NAME_LENGTH = 255
MAX_INSERT_ID_LENGTH = 36
MIN_EVENT_TIME_MS = 31_536_000_000  # 1971-01-01T00:00:00Z
MAX_FUTURE_MS = 3_600_000  # one hour ahead of the server clock
SECONDS_THRESHOLD = 100_000_000_000  # below: seconds since epoch; above: milliseconds

# Placeholder values that almost always mean an implementation mistake (Mixpanel rejects them).
RESERVED_IDS = frozenset(
    {
        "",
        "anon",
        "anonymous",
        "nil",
        "none",
        "null",
        "n/a",
        "na",
        "undefined",
        "unknown",
        "<nil>",
        "0",
        "-1",
        "true",
        "false",
        "[]",
        "{}",
        "00000000-0000-0000-0000-000000000000",
        "[object object]",
    }
)
_INSERT_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
_CONTAINERS = (dict, list)
# Properties kept in their own columns rather than in the properties document.
COLUMN_PROPERTIES = ("token", "distinct_id", "time", "$insert_id")


class Event(NamedTuple):
    """A validated event, ready to store. ``properties`` (JSON text) excludes the columns and
    the token; ``dedup_hash`` with ``time_ms`` is its dedup key (R-ING-3)."""

    name: str
    time_ms: int
    distinct_id: str
    insert_id: str
    properties: str
    dedup_hash: int


# An empty BLAKE2b of 8 bytes: copying it costs half of making one (this runs for every event).
_DEDUP_HASHER = hashlib.blake2b(digest_size=8)


def dedup_hash(name: str, distinct_id: str, insert_id: str) -> int:
    """Signed 64-bit hash of (event, distinct_id, $insert_id); with time it is the dedup key."""
    hasher = _DEDUP_HASHER.copy()
    hasher.update(f"{name}\x00{distinct_id}\x00{insert_id}".encode())
    return int.from_bytes(hasher.digest(), "big", signed=True)


_NO_INSTANT = "'properties.time' is out of range: seconds or milliseconds since epoch"


def _milliseconds(number: float) -> int:
    """``number`` seconds (below SECONDS_THRESHOLD) or milliseconds as whole milliseconds; a
    float past any instant (-1e308 seconds is -inf milliseconds) is a RecordError."""
    scaled = number * 1000 if number < SECONDS_THRESHOLD else number
    if isinstance(scaled, float) and not math.isfinite(scaled):
        raise RecordError("properties.time", _NO_INSTANT)
    return round(scaled)


def normalise_time(value: Any) -> int:
    """Seconds or milliseconds since the epoch (int, float or numeric string) to milliseconds."""
    kind = type(value)
    if kind is int:  # _milliseconds of an int, without the call (this runs for every event)
        return value * 1000 if value < SECONDS_THRESHOLD else value  # type: ignore[no-any-return]
    if kind is float and math.isfinite(value):
        return _milliseconds(value)
    if isinstance(value, bool):
        raise RecordError("properties.time", "'properties.time' must be a number, not a boolean")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise RecordError(
                "properties.time", "'properties.time' must be seconds or milliseconds since epoch"
            ) from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise RecordError(
            "properties.time", "'properties.time' must be seconds or milliseconds since epoch"
        )
    return _milliseconds(value)


def plain_id(value: Any) -> TypeGuard[str]:
    """Whether ``value`` is an id :func:`check_id` takes as it is: a string of at most 255
    characters that is no reserved placeholder (the common case, checked cheaply)."""
    return type(value) is str and len(value) <= 255 and value.strip().lower() not in RESERVED_IDS


def check_id(value: Any, field: str) -> str:
    """A distinct_id-like value: a string or number, not one of the reserved placeholders."""
    if plain_id(value):
        return value  # the common case, checked first and cheaply
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError(field, f"'{field}' must be a string")
    text = value if isinstance(value, str) else str(value)
    if text.strip().lower() in RESERVED_IDS:
        raise RecordError(field, f"'{field}' is the reserved placeholder {text!r}; send a real id")
    if len(text) > 255:
        raise RecordError(field, f"'{field}' is longer than 255 characters")
    return text


def _check_nested(value: Any, field: str, depth: int) -> None:
    if depth > MAX_NESTING_DEPTH:
        raise RecordError(field, f"'{field}' nests deeper than {MAX_NESTING_DEPTH} levels")
    if isinstance(value, dict):
        if len(value) >= MAX_NESTED_KEYS:
            raise RecordError(field, f"'{field}' must have fewer than {MAX_NESTED_KEYS} keys")
        for key, item in value.items():
            if isinstance(item, dict | list):
                _check_nested(item, f"{field}.{key}", depth + 1)
    elif isinstance(value, list):
        if len(value) >= MAX_LIST_ITEMS:
            raise RecordError(field, f"'{field}' must have fewer than {MAX_LIST_ITEMS} items")
        for item in value:
            if isinstance(item, dict | list):
                _check_nested(item, field, depth + 1)


def derived_insert_id(name: str, properties: dict[str, Any]) -> str:
    """A deterministic $insert_id for an event sent without one: a retry of it dedups."""
    body = orjson.dumps([name, properties], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def event_time(raw_time: Any, *, now_ms: int, oldest_ms: int) -> int:
    """``properties.time`` in milliseconds (``now_ms`` when absent), refused before
    ``oldest_ms`` or more than an hour after ``now_ms``."""
    time_ms = now_ms if raw_time is None else normalise_time(raw_time)
    if time_ms < oldest_ms:
        if oldest_ms <= MIN_EVENT_TIME_MS:
            message = "'properties.time' is before 1971-01-01"
        else:
            message = "'properties.time' is too old for /track; send historical events to /import"
        raise RecordError("properties.time", message)
    if time_ms > now_ms + MAX_FUTURE_MS:
        raise RecordError(
            "properties.time", "'properties.time' is more than one hour in the future"
        )
    return time_ms


def check_insert_id(value: Any) -> str:
    """A ``$insert_id`` as sent: 1-36 letters, digits and '-', no reserved placeholder."""
    if type(value) is not str or not _INSERT_ID.fullmatch(value):
        raise RecordError(
            "properties.$insert_id",
            "'properties.$insert_id' must be 1-36 characters of letters, digits and '-'",
        )
    if len(value) < 40 and value.lower() in RESERVED_IDS:
        raise RecordError(
            "properties.$insert_id", "'properties.$insert_id' is a reserved placeholder"
        )
    return value


def stored_event(
    name: str, time_ms: int, distinct_id: str, insert_id: str | None, stored: dict[str, Any]
) -> Event:
    """The event of validated parts: ``stored`` is its properties less the columns and the
    token, ``insert_id`` None when it was sent without one (then derived from the rest)."""
    if insert_id is None:
        insert_id = derived_insert_id(name, {**stored, "distinct_id": distinct_id, "time": time_ms})
    body = orjson.dumps(stored, option=orjson.OPT_NON_STR_KEYS)
    if len(body) > MAX_EVENT_BYTES:
        raise RecordError("properties", "an event must be smaller than 1 MB of uncompressed JSON")
    return Event(
        name,
        time_ms,
        distinct_id,
        insert_id,
        body.decode(),
        dedup_hash(name, distinct_id, insert_id),
    )


def parse_event(
    record: Any, *, now_ms: int, oldest_ms: int, distinct_id: str | None = None
) -> Event:
    """Validate one raw event object and normalise it.

    ``oldest_ms`` is the oldest accepted time (1971 for /import, five days ago for /track).
    ``distinct_id`` overrides the record's own (identity rules may derive it).
    """
    if type(record) is not dict:
        raise RecordError(
            "event", "each record must be a JSON object with 'event' and 'properties'"
        )
    name = record.get("event")
    if type(name) is not str or not name:
        raise RecordError("event", "'event' is required and must be a non-empty string")
    if len(name) > MAX_EVENT_NAME_LENGTH:
        raise RecordError("event", f"'event' is longer than {MAX_EVENT_NAME_LENGTH} characters")
    props = record.get("properties")
    if props is None:
        props = {}
    elif type(props) is not dict:
        raise RecordError("properties", "'properties' must be a JSON object")
    if len(props) >= MAX_PROPERTIES:
        raise RecordError(
            "properties", f"an event must have fewer than {MAX_PROPERTIES} properties"
        )

    raw_id = distinct_id if distinct_id is not None else props.get("distinct_id")
    if raw_id is None:
        raise RecordError("properties.distinct_id", "'properties.distinct_id' is required")
    did = check_id(raw_id, "properties.distinct_id")
    time_ms = event_time(props.get("time"), now_ms=now_ms, oldest_ms=oldest_ms)

    stored = props.copy()
    for column in COLUMN_PROPERTIES:
        stored.pop(column, None)
    for key, value in stored.items():
        if type(value) in _CONTAINERS:
            _check_nested(value, f"properties.{key}", 1)

    insert_id = props.get("$insert_id")
    if insert_id is not None:
        insert_id = check_insert_id(insert_id)
    return stored_event(name, time_ms, did, insert_id, stored)
