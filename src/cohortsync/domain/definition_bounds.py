"""The bounds every cohort definition keeps, checked as it is parsed, and the error naming where
one is broken (issue 15, finding 4).

A definition is evaluated as one SQL query on every count, page and sync run, so its size is
bounded where it enters: nesting, how many conditions and values, the range of its numbers (a
64-bit integer column, finite floats), the length of windows, names and strings. Each refusal
names the JSON path of the offending node.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from cohortsync.domain.errors import BatchError

MAX_DEPTH = 16  # levels of all/any/not, the root condition being level 1
# ... and with the cohorts it refers to inlined (see cohort_size)
MAX_INLINED_DEPTH = 4 * MAX_DEPTH
MAX_CONDITIONS = 200  # every condition node, event filters (``where``) included
MAX_LIST_VALUES = 1_000  # values of one ``in``/``not_in`` list
MAX_VALUES = 5_000  # values of the whole definition, lists included
MAX_NAME_CHARS = 255  # a property or an event name
MAX_TEXT_CHARS = 1_024  # a string value
MAX_DESCRIPTION_CHARS = 2_000  # a cohort's description
MIN_INTEGER, MAX_INTEGER = -(2**63), 2**63 - 1  # what both engines hold as an integer
MAX_COHORT_ID = 2**31 - 1  # cohort ids are 32-bit
MAX_WINDOW_DAYS = 3_660  # a ``last`` window: about ten years
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(2999, 12, 31)  # a ``between`` window's days


class DefinitionError(BatchError):
    """A cohort definition is invalid; ``path`` is the JSON path of the offending part."""

    code = "invalid_definition"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def checked_text(value: str, path: str, limit: int, what: str) -> str:
    """``value`` if it is at most ``limit`` characters that both engines can store (UTF-8, no
    NUL character)."""
    if len(value) > limit:
        raise DefinitionError(path, f"{what} is over {limit:,} characters; shorten it")
    if "\x00" in value:
        raise DefinitionError(path, f"{what} contains a NUL character; remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise DefinitionError(path, f"{what} is not valid UTF-8 (a lone surrogate)") from None
    return value


def checked_integer(value: int, path: str, low: int = MIN_INTEGER, high: int = MAX_INTEGER) -> int:
    """``value`` if it lies in ``low..high`` (by default a signed 64-bit integer)."""
    if not low <= value <= high:
        raise DefinitionError(path, f"{value} is out of range; use a number from {low} to {high}")
    return value


def checked_scalar(value: Any, path: str) -> Any:
    """A string, number or boolean value within bounds (other values are left to the caller)."""
    if isinstance(value, str):
        return checked_text(value, path, MAX_TEXT_CHARS, "the value")
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return checked_integer(value, path)
    if isinstance(value, float) and not math.isfinite(value):
        raise DefinitionError(path, f"{value} is not a finite number; use a finite number")
    return value


def checked_day(day: date, path: str) -> date:
    """A window's day between 1970-01-01 and 2999-12-31."""
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise DefinitionError(
            path,
            f"{day.isoformat()} is out of range; use a day from {EARLIEST_DAY} to {LATEST_DAY}",
        )
    return day


class Budget:
    """What one definition has used so far of its bounds on conditions and values."""

    def __init__(self) -> None:
        self.conditions = 0
        self.values = 0

    def enter(self, path: str, depth: int) -> None:
        """Count one more condition node at nesting ``depth`` (the root is 1)."""
        if depth > MAX_DEPTH:
            raise DefinitionError(
                path, f"conditions are nested more than {MAX_DEPTH} levels deep; flatten them"
            )
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise DefinitionError(
                path, f"a definition holds at most {MAX_CONDITIONS} conditions; split it"
            )

    def spend(self, path: str, count: int) -> None:
        """Count ``count`` more values (a list holds at most MAX_LIST_VALUES of them)."""
        if count > MAX_LIST_VALUES:
            raise DefinitionError(
                path, f"a list holds at most {MAX_LIST_VALUES:,} values; use a static cohort"
            )
        self.values += count
        if self.values > MAX_VALUES:
            raise DefinitionError(
                path, f"a definition holds at most {MAX_VALUES:,} values; use a static cohort"
            )


def nesting(raw: Any) -> int:
    """How deeply a JSON document nests objects and lists (without recursing)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(raw, 1)]
    while pending:
        node, level = pending.pop()
        if isinstance(node, dict):
            deepest = max(deepest, level)
            pending.extend((v, level + 1) for v in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, level)
            pending.extend((v, level + 1) for v in node)
    return deepest


def _field(value: str, field: str, limit: int) -> str:
    try:
        return checked_text(value, field, limit, f"'{field}'")
    except DefinitionError as problem:
        raise BatchError(problem.message) from None


def checked_name(name: str) -> str:
    """A cohort's name without surrounding blanks; 1-255 characters or a BatchError."""
    name = name.strip()
    if not name or len(name) > 255:
        raise BatchError("'name' must be 1-255 characters")
    return _field(name, "name", 255)


def checked_description(description: str) -> str:
    """A cohort's description: at most MAX_DESCRIPTION_CHARS characters or a BatchError."""
    return _field(description, "description", MAX_DESCRIPTION_CHARS)
