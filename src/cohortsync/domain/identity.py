"""Identity rules: which ids are one person (R-ING-5, R-ING-7). Pure; the store applies them.

Simplified ID merge: an event's distinct_id is ``$user_id`` when set, else ``$device:<id>``;
the first event carrying both links the device to the user, permanently.
Original ID merge: ``$identify``, ``$create_alias`` and ``$merge`` join clusters of ids,
at most 500 ids a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cohortsync.domain.errors import RecordError
from cohortsync.domain.events import check_id

MAX_CLUSTER_SIZE = 500
DEVICE_PREFIX = "$device:"
CLEVERTAP_ID_PROPERTY = "$CleverTap_user_id"
IDENTITY_EVENTS = frozenset({"$identify", "$create_alias", "$merge"})


class IdentityMode(StrEnum):
    """How a project joins ids into users."""

    SIMPLIFIED = "simplified"
    ORIGINAL = "original"


@dataclass(frozen=True, slots=True)
class IdentityLink:
    """Join ``ids`` into the cluster of ``into``. ``exclusive`` links only ids not yet linked."""

    into: str
    ids: tuple[str, ...]
    exclusive: bool


def event_distinct_id(name: Any, properties: dict[str, Any], mode: IdentityMode) -> Any:
    """The distinct_id an event belongs to, deriving it when absent: from $user_id/$device_id
    (simplified), or from the ids an identity event names (``$merge`` has no distinct_id)."""
    given = properties.get("distinct_id")
    if given is not None:
        return given
    if name == "$merge" and isinstance(properties.get("$distinct_ids"), list):
        return next(iter(properties["$distinct_ids"]), None)
    if name == "$identify":
        return properties.get("$identified_id")
    if mode is not IdentityMode.SIMPLIFIED:
        return None
    user_id = properties.get("$user_id")
    if user_id is not None:
        return user_id
    device_id = properties.get("$device_id")
    if device_id is not None:
        return f"{DEVICE_PREFIX}{device_id}"
    return None


def simplified_link(properties: dict[str, Any]) -> IdentityLink | None:
    """The device→user link an event carrying both ``$device_id`` and ``$user_id`` makes."""
    user_id = properties.get("$user_id")
    device_id = properties.get("$device_id")
    if user_id is None or device_id is None:
        return None
    user = check_id(user_id, "properties.$user_id")
    device = check_id(device_id, "properties.$device_id")
    return IdentityLink(into=user, ids=(f"{DEVICE_PREFIX}{device}", device), exclusive=True)


def original_link(event_name: str, properties: dict[str, Any]) -> IdentityLink | None:
    """The cluster change an original-ID-merge identity event asks for, or None."""
    if event_name == "$identify":
        identified = check_id(properties.get("$identified_id"), "properties.$identified_id")
        anon = check_id(properties.get("$anon_id"), "properties.$anon_id")
        return IdentityLink(into=identified, ids=(anon,), exclusive=False)
    if event_name == "$create_alias":
        original = check_id(properties.get("distinct_id"), "properties.distinct_id")
        alias = check_id(properties.get("alias"), "properties.alias")
        if alias == original:
            raise RecordError("properties.alias", "'alias' must differ from 'distinct_id'")
        return IdentityLink(into=original, ids=(alias,), exclusive=True)
    if event_name == "$merge":
        ids = properties.get("$distinct_ids")
        if not isinstance(ids, list) or len(ids) != 2:
            raise RecordError(
                "properties.$distinct_ids", "'$distinct_ids' must be a list of two distinct_ids"
            )
        first = check_id(ids[0], "properties.$distinct_ids[0]")
        second = check_id(ids[1], "properties.$distinct_ids[1]")
        return IdentityLink(into=first, ids=(second,), exclusive=False)
    return None


def clevertap_alias(distinct_id: str, update_value: Any) -> IdentityLink | None:
    """Auto-alias: a profile ``$set`` of ``$CleverTap_user_id`` makes that id an alias (R-ING-7)."""
    if not isinstance(update_value, dict) or CLEVERTAP_ID_PROPERTY not in update_value:
        return None
    value = update_value[CLEVERTAP_ID_PROPERTY]
    if value is None:
        return None
    alias = check_id(value, CLEVERTAP_ID_PROPERTY)
    if alias == distinct_id:
        return None
    return IdentityLink(into=distinct_id, ids=(alias,), exclusive=True)
