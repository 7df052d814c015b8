"""Compiled decoders of event bodies (msgspec): the shape and limits of clean events are checked
in C as the JSON is read, so a clean batch skips most per-record checks in Python.

They take less than :func:`cohortsync.domain.events.parse_event` does, never more: a body they
refuse (msgspec stops at the first record it refuses) goes whole through the per-record path,
which says what is wrong with each record, so every message stays that path's own. Besides the
rules, they refuse what only looks unusual: fields beside ``event`` and ``properties``, missing
properties, integers beyond 64 bits (orjson reads those as floats), deeper nesting anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from cohortsync.domain.events import (
    MAX_EVENT_NAME_LENGTH,
    MAX_LIST_ITEMS,
    MAX_NESTED_KEYS,
    MAX_PROPERTIES,
    MAX_RECORDS_PER_REQUEST,
)

_ITEMS = Meta(max_length=MAX_LIST_ITEMS - 1)
_KEYS = Meta(max_length=MAX_NESTED_KEYS - 1)
# orjson reads an integer past 64 bits as a float; past int64 is left to the per-record path.
_Integer = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
_Scalar = str | _Integer | float | bool | None
# A property's value: lists and objects inside it nest at most three levels (MAX_NESTING_DEPTH,
# which the tests hold these types to).
_Level3 = _Scalar | Annotated[list[_Scalar], _ITEMS] | Annotated[dict[str, _Scalar], _KEYS]
_Level2 = _Scalar | Annotated[list[_Level3], _ITEMS] | Annotated[dict[str, _Level3], _KEYS]
_Value = _Scalar | Annotated[list[_Level2], _ITEMS] | Annotated[dict[str, _Level2], _KEYS]


class EventIn(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One event as the compiled decoders take it. ``properties`` is a fresh dict the caller
    may change (never one of the caller's records)."""

    event: Annotated[str, Meta(min_length=1, max_length=MAX_EVENT_NAME_LENGTH)]
    properties: Annotated[dict[str, _Value], Meta(max_length=MAX_PROPERTIES - 1)]


_JSON_EVENTS = msgspec.json.Decoder(
    Annotated[list[EventIn], Meta(max_length=MAX_RECORDS_PER_REQUEST)] | EventIn
)


def events_from_json(document: bytes) -> list[EventIn] | None:
    """The events of a JSON body (an array of events, or one event), or None when the
    compiled decoder refuses it."""
    try:
        decoded = _JSON_EVENTS.decode(document)
    except msgspec.DecodeError:  # and its ValidationError
        return None
    return decoded if isinstance(decoded, list) else [decoded]


def events_from_records(records: Sequence[Any]) -> list[EventIn] | None:
    """The events of records already decoded (dicts from orjson), or None when the compiled
    checks refuse one of them."""
    try:
        return msgspec.convert(records, list[EventIn])
    except msgspec.ValidationError:
        return None
