"""How large a stored profile may grow: at most 2,000 properties (what Mixpanel documents a
profile holds, docs.mixpanel.com/docs/data-structure/user-profiles) and 1 MB as JSON.

Each update rewrites its whole profile, so an unbounded profile makes every later update to it
slower, and the writer is shared by every project. An update that would take a profile past
either bound is refused by its position (the rest of its batch is stored); one that shrinks a
profile already past a bound (stored before the bounds) still passes, so it can be cleaned up.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import orjson

from cohortsync.domain.errors import RecordError
from cohortsync.domain.profiles import Properties

MAX_STORED_PROPERTIES = 2000
MAX_STORED_BYTES = 1024 * 1024


def _json_size(value: Any) -> int:
    return len(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))


def _entry_size(properties: Properties | None, name: str) -> int:
    """The bytes ``name`` and its value take in the profile's JSON (0 when absent)."""
    if not properties or name not in properties:
        return 0
    return _json_size(name) + _json_size(properties[name]) + 2  # the colon and a comma


class ProfileBounds:
    """The running sizes of the profiles one batch of updates touches, to refuse an update
    that would take a profile past :data:`MAX_STORED_PROPERTIES` or :data:`MAX_STORED_BYTES`.

    Only the properties an update names are serialized again: a profile is measured whole once
    a batch, when first touched."""

    def __init__(self) -> None:
        self._bytes: dict[Hashable, int] = {}

    def check(
        self,
        key: Hashable,
        before: Properties | None,
        after: Properties | None,
        operation: str,
        value: Any,
    ) -> RecordError | None:
        """Why the update of profile ``key`` from ``before`` to ``after`` is refused, or None
        (then ``after`` is counted as the profile's size)."""
        if after is None:  # $delete
            self._bytes.pop(key, None)
            return None
        count_before = len(before) if before else 0
        if len(after) > MAX_STORED_PROPERTIES and len(after) > count_before:
            return RecordError(
                operation,
                f"the profile would hold {len(after):,} properties; a profile holds at most "
                f"{MAX_STORED_PROPERTIES:,}: $unset some before adding others",
            )
        size_before = self._bytes.get(key)
        if size_before is None:
            size_before = _json_size(before or {})
        names: Iterable[str] = value if isinstance(value, list) else value.keys()
        size = size_before + sum(
            _entry_size(after, name) - _entry_size(before, name) for name in set(names)
        )
        if size > MAX_STORED_BYTES and size > size_before:
            return RecordError(
                operation,
                f"the profile would be {size:,} bytes of JSON; a profile holds at most "
                f"{MAX_STORED_BYTES // (1024 * 1024)} MB: $unset or shorten some properties first",
            )
        self._bytes[key] = size
        return None
