"""Profile update operations ($set, $set_once, $add, ...) as pure functions (R-ING-4).

Semantics follow Mixpanel's documentation; where it is silent we choose and state it:
``$add`` / ``$append`` / ``$union`` / ``$remove`` leave a property of the wrong type (a null
included) unchanged, and ``$remove`` takes out every element equal to the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cohortsync.domain.errors import RecordError

Properties = dict[str, Any]

PROFILE_OPERATIONS = (
    "$set",
    "$set_once",
    "$add",
    "$append",
    "$union",
    "$remove",
    "$unset",
    "$delete",
)
GROUP_OPERATIONS = ("$set", "$set_once", "$union", "$remove", "$unset", "$delete")


@dataclass(frozen=True, slots=True)
class ProfileUpdate:
    """One validated operation on one profile."""

    distinct_id: str
    operation: str
    value: Any


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_operation(operation: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raise RecordError if ``value`` is not the shape ``operation`` takes."""
    if operation not in allowed:
        raise RecordError(operation, f"unknown operation {operation!r}; expected one of {allowed}")
    if operation == "$unset":
        if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
            raise RecordError(operation, "'$unset' takes a list of property names")
        return
    if operation == "$delete":
        return
    if not isinstance(value, dict):
        raise RecordError(operation, f"'{operation}' takes an object of property names to values")
    if operation == "$add":
        for key, amount in value.items():
            if not _is_number(amount):
                raise RecordError(f"$add.{key}", f"'$add.{key}' must be a number")
    if operation == "$union":
        for key, items in value.items():
            if not isinstance(items, list):
                raise RecordError(f"$union.{key}", f"'$union.{key}' must be a list")


def apply_operation(properties: Properties | None, operation: str, value: Any) -> Properties | None:
    """Return the profile after ``operation``; ``None`` means the profile is deleted."""
    if operation == "$delete":
        return None
    result: Properties = dict(properties) if properties else {}
    if operation == "$set":
        result.update(value)
    elif operation == "$set_once":
        for key, item in value.items():
            result.setdefault(key, item)
    elif operation == "$add":
        for key, amount in value.items():
            current = result.get(key, 0)
            if _is_number(current):
                result[key] = current + amount
    elif operation == "$append":
        for key, item in value.items():
            current = result.get(key, [])
            if isinstance(current, list):
                result[key] = [*current, item]
    elif operation == "$union":
        for key, items in value.items():
            current = result.get(key, [])
            if not isinstance(current, list):
                continue
            merged = list(current)
            for item in items:
                if item not in merged:
                    merged.append(item)
            result[key] = merged
    elif operation == "$remove":
        for key, item in value.items():
            current = result.get(key)
            if isinstance(current, list):
                result[key] = [x for x in current if x != item]
    elif operation == "$unset":
        for key in value:
            result.pop(key, None)
    return result


def merge_profiles(winner: Properties | None, absorbed: Properties | None) -> Properties | None:
    """Profile of two merged identities: the surviving user's values win, the other fills gaps."""
    if absorbed is None:
        return winner
    if winner is None:
        return dict(absorbed)
    return {**absorbed, **winner}


def is_identified(properties: Properties | None) -> bool:
    """A user is identified when their profile has at least one property (R-ING-6)."""
    return bool(properties)
