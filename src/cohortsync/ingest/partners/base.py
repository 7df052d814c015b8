"""What every partner format produces: events with the keys that find their user, in order."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import orjson

from cohortsync.domain.errors import BatchError, RecordError
from cohortsync.domain.events import normalise_time


class ByProperty(NamedTuple):
    """The user whose profile has ``prop`` equal to ``value`` (e.g. ``$email``)."""

    prop: str
    value: str


class ById(NamedTuple):
    """The user ``value`` is an id of (a distinct_id or an alias such as ``$CleverTap_user_id``)."""

    value: str


MatchKey = ByProperty | ById


@dataclass(frozen=True)
class PartnerEvent:
    """One partner event, normalised: the first of ``keys`` that finds a known user attributes
    it; with none, it is stored under ``fallback_id`` and creates no profile."""

    name: str
    # milliseconds since the epoch; None when the payload has no time (the receipt time is used,
    # remembered by insert_id so that a replay keeps it)
    time_ms: int | None
    keys: tuple[MatchKey, ...]
    fallback_id: str
    insert_id: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookRequest:
    """What authentication may look at: the headers (lower-case names) and the raw body."""

    headers: Mapping[str, str]
    body: bytes


class PartnerFormat(Protocol):
    """One partner's outbound events: how its calls prove themselves and what they carry."""

    source: str  # the $source the events are tagged with
    # the partner makes the signing key itself: the admin pastes it in as the webhook secret
    generates_key: bool

    def authenticate(self, request: WebhookRequest, secrets: Sequence[str], now_s: int) -> None:
        """Return when the request proves one of ``secrets``; else raise AuthenticationError."""

    def events(self, body: Any) -> list[PartnerEvent | RecordError]:
        """The body's events, or the error of each item that cannot be one (by position)."""


def payload_insert_id(source: str, item: Any) -> str:
    """A deterministic ``$insert_id`` (32 hex digits) from the item as the partner sent it, so a
    replayed delivery is stored once."""
    try:
        body = orjson.dumps([source, item], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError: nested past the 254 levels orjson writes
        raise RecordError("body", "the event is nested too deep; send at most 3 levels") from None
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def text_field(item: Mapping[str, Any], name: str, where: str = "") -> str | None:
    """An optional string (or number) field, as text; anything else is a RecordError."""
    value = item.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RecordError(f"{where}{name}", f"'{where}{name}' must be a string")
    return str(value)


def object_field(item: Mapping[str, Any], name: str, where: str = "") -> dict[str, Any]:
    """An optional JSON object field ({} when absent)."""
    value = item.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"{where}{name}", f"'{where}{name}' must be a JSON object")
    return value


def items_of(body: Any, what: str) -> list[Any]:
    """A body of one JSON object or a list of them, as a list."""
    if isinstance(body, dict):
        return [body]
    if isinstance(body, list):
        return body
    raise BatchError(f"the body must be a JSON object (or a list of them): {what}")


def parse_each(
    items: list[Any], parse: Callable[[Any], PartnerEvent]
) -> list[PartnerEvent | RecordError]:
    """``parse`` applied to each item; an item that fails is its RecordError, in its place."""
    out: list[PartnerEvent | RecordError] = []
    for item in items:
        try:
            out.append(parse(item))
        except RecordError as error:
            out.append(error)
    return out


def epoch_ms(value: Any, field: str, advice: str) -> int:
    """Seconds or milliseconds since the epoch to milliseconds; anything else, or a number no
    instant has (-1e308 seconds), is a RecordError on ``field`` saying ``advice``."""
    try:
        return normalise_time(value)
    except RecordError:
        raise RecordError(field, f"'{field}' {advice}") from None


def datetime_ms(value: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime."""
    return round(value.timestamp() * 1000)
