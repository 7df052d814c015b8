"""The cohort builder's form read back into an R-COH-2 definition.

The form is flat, as HTML forms are: ``group`` lists the groups and ``condition`` the
conditions in page order; each carries its fields under its own id (``<id>.kind``,
``<id>.property`` …). Groups are joined by ``match`` (all/any), conditions inside a group by
``<group>.match``; a condition may be negated. Only what a person could leave incomplete is
checked here (a missing name, a number that is not one); the definition itself is validated
by the cohorts service, as for the API.

A value is compared as what its type select says; left on "auto", a number typed for an
ordering (>, ≥, <, ≤, between) is a number (``amount > 20`` compares with 20, not "20"), and
anything else is text (a date, an equality).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.datastructures import FormData

from cohortsync.domain.cohorts import OPERATOR_WORDS, PROPERTY_OPERATORS, UNIT_SECONDS
from cohortsync.domain.errors import BatchError

MATCHES = ("all", "any")
KINDS = {"property": "Profile property", "event": "Did event", "in_cohort": "In cohort"}
AUTO = "auto"
VALUE_TYPES = {AUTO: "auto", "text": "text", "number": "number", "boolean": "true/false"}
ORDERINGS = frozenset({"gt", "gte", "lt", "lte", "between"})
_LABEL_HINTS = {
    "between": "between (a, b)",
    "is_set": "is set",
    "is_not_set": "is not set",
    "in": "is one of (a, b, …)",
    "not_in": "is none of (a, b, …)",
}
# The words of a condition (as explain says them), with how to type a value where it helps.
OPERATOR_LABELS = {op: _LABEL_HINTS.get(op) or OPERATOR_WORDS[op] for op in PROPERTY_OPERATORS}
COUNT_LABELS = {
    ">=": "at least",
    ">": "more than",
    "=": "exactly",
    "!=": "not exactly",
    "<": "fewer than",
    "<=": "at most",
}
UNITS = tuple(UNIT_SECONDS)


def new_id(prefix: str) -> str:
    """A fresh id for a group, condition or filter of the form."""
    return prefix + secrets.token_hex(4)


def _keys(form: FormData, key: str) -> list[str]:
    """The ids a repeated field lists (``group``, ``condition``, ``<id>.where``)."""
    return [value for value in form.getlist(key) if isinstance(value, str)]


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def _number(raw: str, where: str) -> int | float:
    """A whole number when written as one, else a finite decimal; never nan or infinity (JSON
    has neither)."""
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)
    except ValueError:
        raise BatchError(f"{where}: {raw!r} is not a number") from None
    if not math.isfinite(number):
        raise BatchError(f"{where}: {raw!r} is not a finite number")
    return number


def _is_number(raw: str) -> bool:
    try:
        _number(raw, "")
    except BatchError:
        return False
    return True


def _value_type(chosen: str, op: str, raws: Sequence[str]) -> str:
    """The chosen type, or for "auto": number for an ordering of numbers, else text."""
    if chosen in VALUE_TYPES and chosen != AUTO:
        return chosen
    return "number" if op in ORDERINGS and raws and all(map(_is_number, raws)) else "text"


def _scalar(raw: str, kind: str, where: str) -> Any:
    if kind == "number":
        return _number(raw, where)
    if kind == "boolean":
        if raw.lower() not in ("true", "false"):
            raise BatchError(f"{where}: write true or false")
        return raw.lower() == "true"
    return raw


def property_condition(form: FormData, key: str, where: str) -> dict[str, Any]:
    """``{property, op, value}`` from the fields under ``key`` (a condition or a filter)."""
    name = _text(form, f"{key}.property")
    if not name:
        raise BatchError(f"{where}: name the property")
    op = _text(form, f"{key}.op") or "equals"
    condition: dict[str, Any] = {"property": name, "op": op}
    if op in ("is_set", "is_not_set"):
        return condition
    raw, chosen = _text(form, f"{key}.value"), _text(form, f"{key}.type") or AUTO
    if op in ("between", "in", "not_in"):
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        kind = _value_type(chosen, op, parts)
        condition["value"] = [_scalar(p, kind, where) for p in parts]
        return condition
    kind = _value_type(chosen, op, [raw] if raw else [])
    if not raw and (kind != "text" or op in ORDERINGS):
        raise BatchError(f"{where}: give a value to compare with")
    condition["value"] = _scalar(raw, kind, where)
    return condition


def _whole(raw: str, where: str, what: str) -> int:
    try:
        number = int(raw)
    except ValueError:
        number = -1
    if number < 0:
        raise BatchError(f"{where}: {what} must be a whole number")
    return number


def event_condition(form: FormData, key: str, where: str) -> dict[str, Any]:
    """``{event, count, within, where}`` from the fields under ``key``."""
    name = _text(form, f"{key}.event")
    if not name:
        raise BatchError(f"{where}: name the event")
    condition: dict[str, Any] = {"event": name}
    count_raw = _text(form, f"{key}.count") or "1"
    condition["count"] = {
        "op": _text(form, f"{key}.count_op") or ">=",
        "value": _whole(count_raw, where, "the count"),
    }
    last = _text(form, f"{key}.last")
    if last:
        unit = _text(form, f"{key}.unit") or "day"
        condition["within"] = {"last": _whole(last, where, "the window"), "unit": unit}
    filters = [
        property_condition(form, f, f"{where}, filter {n}")
        for n, f in enumerate(_keys(form, f"{key}.where"), start=1)
    ]
    if filters:
        condition["where"] = filters
    return condition


def _condition(form: FormData, key: str, where: str) -> dict[str, Any]:
    kind = _text(form, f"{key}.kind") or "property"
    if kind == "event":
        condition = event_condition(form, key, where)
    elif kind == "in_cohort":
        condition = {"in_cohort": _whole(_text(form, f"{key}.cohort"), where, "the cohort")}
    else:
        condition = property_condition(form, key, where)
    return {"not": condition} if _text(form, f"{key}.negate") else condition


def _joined(match: str, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {match if match in MATCHES else "all": list(items)}


def definition_from_form(form: FormData) -> dict[str, Any]:
    """The definition the builder shows, or a BatchError saying which condition to finish."""
    by_group: dict[str, list[dict[str, Any]]] = {g: [] for g in _keys(form, "group")}
    for number, key in enumerate(_keys(form, "condition"), start=1):
        group = _text(form, f"{key}.group")
        by_group.setdefault(group, []).append(_condition(form, key, f"Condition {number}"))
    groups = [
        _joined(_text(form, f"{group}.match"), items) for group, items in by_group.items() if items
    ]
    if not groups:
        raise BatchError("add a condition")
    if len(groups) == 1:
        return groups[0]
    return _joined(_text(form, "match"), groups)


def builder_options(cohorts: Mapping[int, str]) -> dict[str, Any]:
    """The choices every part of the builder offers."""
    return {
        "matches": MATCHES,
        "kinds": KINDS,
        "operators": OPERATOR_LABELS,
        "value_types": VALUE_TYPES,
        "count_operators": COUNT_LABELS,
        "units": UNITS,
        "cohort_choices": cohorts,
    }
