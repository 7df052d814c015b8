"""The limits Mixpanel documents for profile updates (/engage and /groups), checked on each update
so that one over them is refused by its position while the rest of its batch is stored.

What Mixpanel documents, and what is checked here:

- docs.mixpanel.com/reference/user-profile-limits: "at most 2000 profile updates a request" (the
  request's limit, ``MAX_RECORDS_PER_REQUEST``) and "each individual update a maximum of 1 MB"
  (``MAX_UPDATE_BYTES``: the operation's value as JSON).
- docs.mixpanel.com/docs/data-structure/user-profiles, "What are the limits of User Properties?":
  "up to 2000 properties" a profile (``MAX_PROPERTIES``: one update names at most that many; the
  stored profile is held to it where updates are applied, :mod:`cohortsync.domain.profile_bounds`,
  with 1 MB of JSON) and
  names "at most 255 characters" (``MAX_NAME_LENGTH``; Mixpanel truncates longer names, which
  would silently merge two properties: they are refused instead).
- docs.mixpanel.com/docs/data-structure/property-reference/data-type: a list or object property
  of a user profile at most 256 KB (``MAX_VALUE_BYTES``), objects "max 255 keys per nested object
  with a max nesting depth of 3" (``MAX_OBJECT_KEYS``, ``MAX_NESTING_DEPTH``, counted as for
  events: the property's own value is level 1). Strings, which Mixpanel truncates at 255 bytes,
  are kept whole within the same 256 KB: a truncated value would match different cohorts.

Mixpanel documents no bound for ``$add``; amounts are kept within ±2^53 (what a JavaScript number,
and so every SDK, holds exactly), which also keeps a running total finite. Text holding the NUL
character is refused everywhere (see :mod:`cohortsync.ingest.storable`).
"""

from __future__ import annotations

from typing import Any

import orjson

from cohortsync.domain.errors import RecordError
from cohortsync.domain.events import check_id
from cohortsync.domain.identity import CLEVERTAP_ID_PROPERTY
from cohortsync.domain.profile_bounds import MAX_STORED_PROPERTIES
from cohortsync.ingest import storable

MAX_UPDATE_BYTES = 1024 * 1024
MAX_PROPERTIES = MAX_STORED_PROPERTIES
MAX_NAME_LENGTH = 255
MAX_VALUE_BYTES = 256 * 1024
MAX_OBJECT_KEYS = 255
MAX_NESTING_DEPTH = 3
MAX_ADD_AMOUNT = 2**53

_CONTAINERS = (dict, list)


def _check_names(operation: str, names: Any) -> None:
    """At most MAX_PROPERTIES names, each a string of at most MAX_NAME_LENGTH characters."""
    if len(names) > MAX_PROPERTIES:
        raise RecordError(
            operation,
            f"'{operation}' names {len(names)} properties; a profile holds at most "
            f"{MAX_PROPERTIES}, so send fewer",
        )
    for name in names:
        if not isinstance(name, str):
            raise RecordError(operation, f"'{operation}' has a property name that is not a string")
        if len(name) > MAX_NAME_LENGTH:
            raise RecordError(
                operation,
                f"'{operation}' has a property name longer than {MAX_NAME_LENGTH} characters "
                f"({name[:40]!r}...)",
            )
        storable.check_text(name, operation)


def _check_nesting(value: Any, field: str, depth: int) -> None:
    if depth > MAX_NESTING_DEPTH:
        raise RecordError(field, f"'{field}' nests deeper than {MAX_NESTING_DEPTH} levels")
    if isinstance(value, dict) and len(value) > MAX_OBJECT_KEYS:
        raise RecordError(field, f"'{field}' has more than {MAX_OBJECT_KEYS} keys")
    for item in value.values() if isinstance(value, dict) else value:
        if type(item) in _CONTAINERS:
            _check_nesting(item, field, depth + 1)


def _json(value: Any, field: str) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a foreign type
        raise RecordError(field, f"'{field}' holds a value JSON cannot carry") from None


def _check_sizes(operation: str, value: dict[str, Any], document: bytes) -> None:
    if len(document) > MAX_UPDATE_BYTES:
        raise RecordError(
            operation, f"'{operation}' is larger than 1 MB of JSON; send it in several updates"
        )
    if len(document) <= MAX_VALUE_BYTES:
        return  # under 256 KB as a whole, no single value is over it: most updates stop here
    for name, item in value.items():
        field = f"{operation}.{name}"
        if len(_json(item, field)) > MAX_VALUE_BYTES:
            raise RecordError(
                field, f"'{field}' is larger than {MAX_VALUE_BYTES // 1024} KB of JSON"
            )


def _check_amounts(value: dict[str, Any]) -> None:
    for name, amount in value.items():
        if not -MAX_ADD_AMOUNT <= amount <= MAX_ADD_AMOUNT:
            raise RecordError(
                f"$add.{name}", f"'$add.{name}' must be between -2^53 and 2^53 ({MAX_ADD_AMOUNT})"
            )


def check_update(operation: str, value: Any) -> None:
    """Refuse an operation (already of the right shape) over the documented profile limits."""
    if operation == "$delete":
        return
    _check_names(operation, value)
    if operation == "$unset":
        return  # names only: 2,000 of 255 characters are under 1 MB
    for name, item in value.items():
        if type(item) in _CONTAINERS:
            _check_nesting(item, f"{operation}.{name}", 1)
    document = _json(value, operation)
    _check_sizes(operation, value, document)
    if operation == "$add":
        _check_amounts(value)
    storable.check_document(document, value, operation)
    if operation in ("$set", "$set_once") and value.get(CLEVERTAP_ID_PROPERTY) is not None:
        # it becomes an alias of the user (R-ING-7): refused here, not when the batch is stored
        field = f"{operation}.{CLEVERTAP_ID_PROPERTY}"
        storable.check_text(check_id(value[CLEVERTAP_ID_PROPERTY], field), field)
