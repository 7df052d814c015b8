"""Cohorts and their definitions (R-COH-2): a typed tree parsed from JSON, with errors that name the
JSON path, and the stored cohort itself.

    {"all": [cond, ...]} | {"any": [cond, ...]} | {"not": cond}
    {"property": NAME, "op": OP, "value": V}               a profile property of the user
    {"event": NAME, "count": {"op": ">=", "value": 1},     how often the user did an event,
     "within": {"last": N, "unit": "day"} | {"between": ["YYYY-MM-DD", "YYYY-MM-DD"]},
     "where": [property conditions on the event]}
    {"in_cohort": ID}                                      membership of another cohort

Semantics, shared by every SQL dialect and the reference evaluator:
- Comparisons are typed: a number equals a number (1 == 1.0), a string a string, a boolean a
  boolean; a value of another type never matches. ``gt``/``gte``/``lt``/``lte``/``between``
  compare numbers with numbers and strings with strings (ISO dates order as text).
- ``contains`` is a case-sensitive substring test on strings and a membership test on lists.
- A missing or null property matches only ``is_not_set`` and the negative operators
  (``not_equals``, ``not_contains``, ``not_in``).
- Windows: ``last`` N minutes/hours/days/weeks/months (a month is 30 days) up to the evaluation
  time, both ends included; ``between`` covers whole UTC days, both days included.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal

from cohortsync.domain.definition_bounds import (
    MAX_COHORT_ID,
    MAX_INLINED_DEPTH,
    MAX_INTEGER,
    MAX_NAME_CHARS,
    MAX_WINDOW_DAYS,
    Budget,
    DefinitionError,
    checked_day,
    checked_integer,
    checked_scalar,
    checked_text,
    nesting,
)

__all__ = ["DefinitionError"]  # raised by the parser, defined beside the bounds

PROPERTY_OPERATORS = (
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "is_set",
    "is_not_set",
    "in",
    "not_in",
)
NEGATIVE_OPERATORS = frozenset({"not_equals", "not_contains", "not_in", "is_not_set"})
# The count comparisons, as functions that work on ints and on SQL expressions alike.
COUNT_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
}
COUNT_OPERATORS = tuple(COUNT_COMPARISONS)
UNIT_SECONDS = {
    "minute": 60,
    "hour": 3600,
    "day": 86_400,
    "week": 7 * 86_400,
    "month": 30 * 86_400,
}
Scalar = str | int | float | bool

# How each profile operator reads in a sentence ("plan equals \"pro\"").
OPERATOR_WORDS = {
    "equals": "equals",
    "not_equals": "does not equal",
    "contains": "contains",
    "not_contains": "does not contain",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "in": "is one of",
    "not_in": "is none of",
}


class CohortKind(StrEnum):
    """A dynamic cohort is computed from its definition; a static one lists its members."""

    DYNAMIC = "dynamic"
    STATIC = "static"


@dataclass(frozen=True)
class Cohort:
    """A stored cohort."""

    id: int
    project_id: int
    name: str
    description: str
    kind: CohortKind
    definition: Any
    created_by: int | None
    created_at: datetime
    updated_at: datetime

    @cached_property
    def problem(self) -> DefinitionError | None:
        """Why the stored definition cannot be evaluated (saved before its bounds), or None."""
        return definition_problem(self.definition) if self.kind is CohortKind.DYNAMIC else None

    def as_json(self) -> dict[str, Any]:
        """The API representation; a definition that breaks its bounds is marked ``invalid``
        (and left out when it nests too deeply to be sent)."""
        body = {
            "id": self.id,
            "project_id": self.project_id,
            "name": self.name,
            "description": self.description,
            "kind": self.kind.value,
            "definition": self.definition,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
        if self.problem is not None:
            body["invalid"] = {"path": self.problem.path, "message": self.problem.message}
            if nesting(self.definition) > MAX_INLINED_DEPTH:
                body["definition"] = None
        return body


@dataclass(frozen=True)
class PropertyCondition:
    """A condition on a property (of the user's profile, or of an event in ``where``)."""

    property: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class CountComparison:
    """How many matching events qualify: ``count <op> value``."""

    op: str = ">="
    value: int = 1

    def holds(self, count: int) -> bool:
        """Whether ``count`` satisfies the comparison."""
        return bool(COUNT_COMPARISONS[self.op](count, self.value))


@dataclass(frozen=True)
class LastWindow:
    """The last ``amount`` units, up to the evaluation time."""

    amount: int
    unit: str

    @property
    def milliseconds(self) -> int:
        """Length of the window."""
        return self.amount * UNIT_SECONDS[self.unit] * 1000


@dataclass(frozen=True)
class DateWindow:
    """Whole UTC days from ``start`` to ``end``, both included."""

    start: date
    end: date


@dataclass(frozen=True)
class EventCondition:
    """The user did ``event`` a number of times, in a window, with event property filters."""

    event: str
    count: CountComparison = CountComparison()
    within: LastWindow | DateWindow | None = None
    where: tuple[PropertyCondition, ...] = ()


@dataclass(frozen=True)
class CohortReference:
    """Membership of another cohort."""

    cohort_id: int


@dataclass(frozen=True)
class Group:
    """All or any of ``items``."""

    kind: Literal["all", "any"]
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    """The negation of ``item``."""

    item: Condition


Condition = PropertyCondition | EventCondition | CohortReference | Group | Not


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _object(raw: Any, path: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise DefinitionError(path, "expected an object")
    unknown = sorted(set(raw) - allowed, key=str)
    if unknown:
        key = checked_text(str(unknown[0]), path, MAX_NAME_CHARS, "a key")
        raise DefinitionError(f"{path}.{key}", f"unknown key; expected one of {sorted(allowed)}")
    return raw


def _name(raw: Any, path: str, what: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise DefinitionError(path, f"expected {what}")
    return checked_text(raw, path, MAX_NAME_CHARS, what)


def _values(value: Any, where: str, budget: Budget, single: bool = False) -> tuple[Any, ...]:
    """Each value of a list (or the ``single`` value), bounded, counted against the budget."""
    budget.spend(where, len(value))
    if single:
        return (checked_scalar(value[0], where),)
    return tuple(checked_scalar(v, f"{where}[{i}]") for i, v in enumerate(value))


def parse_property_condition(
    raw: Any, path: str, budget: Budget | None = None, depth: int = 1
) -> PropertyCondition:
    """``{"property", "op", "value"}`` with the value checked against the operator."""
    budget = budget or Budget()
    budget.enter(path, depth)
    node = _object(raw, path, {"property", "op", "value"})
    name = _name(node.get("property"), f"{path}.property", "a property name")
    op = node.get("op")
    if op not in PROPERTY_OPERATORS:
        raise DefinitionError(
            f"{path}.op", f"unknown operator {op!r}; expected one of {list(PROPERTY_OPERATORS)}"
        )
    value = node.get("value")
    where = f"{path}.value"
    if op in ("is_set", "is_not_set"):
        if value is not None:
            raise DefinitionError(where, f"'{op}' takes no value")
    elif op in ("equals", "not_equals", "contains", "not_contains"):
        if not _scalar(value):
            raise DefinitionError(where, f"'{op}' needs a string, number or boolean")
        value = _values([value], where, budget, single=True)[0]
    elif op in ("gt", "gte", "lt", "lte"):
        if not (_number(value) or isinstance(value, str)):
            raise DefinitionError(where, f"'{op}' needs a number or a date/time string")
        value = _values([value], where, budget, single=True)[0]
    elif op == "between":
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not (all(_number(v) for v in value) or all(isinstance(v, str) for v in value))
        ):
            raise DefinitionError(where, "'between' needs two numbers or two date/time strings")
        value = _values(value, where, budget)
    elif op in ("in", "not_in"):
        if not isinstance(value, list) or not value or not all(_scalar(v) for v in value):
            raise DefinitionError(where, f"'{op}' needs a non-empty list of values")
        value = _values(value, where, budget)
    return PropertyCondition(name, op, value)


def _whole(raw: Any, path: str, message: str, low: int, high: int = MAX_INTEGER) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < low:
        raise DefinitionError(path, message)
    return checked_integer(raw, path, low, high)


def _parse_count(raw: Any, path: str) -> CountComparison:
    node = _object(raw, path, {"op", "value"})
    op = node.get("op", ">=")
    if op not in COUNT_OPERATORS:
        raise DefinitionError(
            f"{path}.op", f"unknown count operator {op!r}; expected one of {list(COUNT_OPERATORS)}"
        )
    value = _whole(
        node.get("value", 1), f"{path}.value", "expected a whole number of events (0 or more)", 0
    )
    return CountComparison(op, value)


def _parse_date(raw: Any, path: str) -> date:
    if not isinstance(raw, str) or len(raw) > 10:
        raise DefinitionError(path, "expected a date as YYYY-MM-DD")
    try:
        return checked_day(date.fromisoformat(raw), path)
    except ValueError:
        raise DefinitionError(path, f"expected a date as YYYY-MM-DD, got {raw!r}") from None


def _parse_window(raw: Any, path: str) -> LastWindow | DateWindow:
    node = _object(raw, path, {"last", "unit", "between"})
    if "between" in node:
        pair = node["between"]
        if not isinstance(pair, list) or len(pair) != 2:
            raise DefinitionError(f"{path}.between", "expected two dates [start, end]")
        start = _parse_date(pair[0], f"{path}.between[0]")
        end = _parse_date(pair[1], f"{path}.between[1]")
        if end < start:
            raise DefinitionError(f"{path}.between", "the end date is before the start date")
        return DateWindow(start, end)
    unit = node.get("unit")
    if unit not in UNIT_SECONDS:
        raise DefinitionError(
            f"{path}.unit", f"unknown unit {unit!r}; expected one of {list(UNIT_SECONDS)}"
        )
    amount = node.get("last")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise DefinitionError(f"{path}.last", "expected a positive whole number")
    most = MAX_WINDOW_DAYS * UNIT_SECONDS["day"] // UNIT_SECONDS[unit]
    if amount > most:
        raise DefinitionError(
            f"{path}.last",
            f"a window is at most {MAX_WINDOW_DAYS:,} days (about ten years): {most:,} {unit}s",
        )
    return LastWindow(amount, unit)


def _parse_event(node: dict[str, Any], path: str, budget: Budget, depth: int) -> EventCondition:
    budget.enter(path, depth)
    _object(node, path, {"event", "count", "within", "where"})
    name = _name(node["event"], f"{path}.event", "an event name")
    count = _parse_count(node["count"], f"{path}.count") if "count" in node else CountComparison()
    within = _parse_window(node["within"], f"{path}.within") if "within" in node else None
    filters = node.get("where", [])
    if not isinstance(filters, list):
        raise DefinitionError(f"{path}.where", "expected a list of property conditions")
    where = tuple(
        parse_property_condition(f, f"{path}.where[{i}]", budget, depth + 1)
        for i, f in enumerate(filters)
    )
    return EventCondition(name, count, within, where)


def parse_condition(
    raw: Any, path: str = "$", budget: Budget | None = None, depth: int = 1
) -> Condition:
    """Parse one node of a definition at nesting ``depth``, counting it against ``budget``."""
    budget = budget or Budget()
    if not isinstance(raw, dict):
        raise DefinitionError(path, "expected an object (a condition or a group)")
    for kind in ("all", "any"):
        if kind in raw:
            budget.enter(path, depth)
            _object(raw, path, {kind})
            items = raw[kind]
            if not isinstance(items, list) or not items:
                raise DefinitionError(f"{path}.{kind}", "expected a non-empty list of conditions")
            parsed = tuple(
                parse_condition(item, f"{path}.{kind}[{i}]", budget, depth + 1)
                for i, item in enumerate(items)
            )
            return Group(kind, parsed)
    if "not" in raw:
        budget.enter(path, depth)
        _object(raw, path, {"not"})
        return Not(parse_condition(raw["not"], f"{path}.not", budget, depth + 1))
    if "in_cohort" in raw:
        budget.enter(path, depth)
        _object(raw, path, {"in_cohort"})
        message = "expected a cohort id"
        return CohortReference(
            _whole(raw["in_cohort"], f"{path}.in_cohort", message, 1, MAX_COHORT_ID)
        )
    if "event" in raw:
        return _parse_event(raw, path, budget, depth)
    if "property" in raw:
        return parse_property_condition(raw, path, budget, depth)
    raise DefinitionError(
        path, "expected one of 'all', 'any', 'not', 'property', 'event', 'in_cohort'"
    )


def parse_definition(raw: Any) -> Condition:
    """Parse a whole definition (the JSON document) within its bounds."""
    return parse_condition(raw, "$")


def definition_problem(raw: Any) -> DefinitionError | None:
    """Why a stored definition cannot be evaluated (one saved before its bounds), or None."""
    try:
        parse_definition(raw)
    except DefinitionError as problem:
        return problem
    return None


def reference_paths(raw: Any, path: str = "$") -> Iterator[tuple[str, int]]:
    """(JSON path, cohort id) of every ``in_cohort`` in a raw definition, in document order
    (without recursing, so that any stored document can be read)."""
    pending: list[tuple[Any, str]] = [(raw, path)]
    while pending:
        node, where = pending.pop()
        if isinstance(node, dict):
            if isinstance(node.get("in_cohort"), int):
                yield f"{where}.in_cohort", node["in_cohort"]
            pending.extend((v, f"{where}.{k}") for k, v in reversed(node.items()))
        elif isinstance(node, list):
            pending.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(node))))
