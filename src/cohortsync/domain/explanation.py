"""Explain (R-X-4, R-SYN-12): why one user is or is not on a sync's partner list, as data.

A cohort definition is explained node by node: each :class:`ConditionCheck` says whether the node
holds for the user and what decided it (the profile value, the number of matching events, the
membership of a referenced cohort). Top-level conditions are numbered 1, 2, …; nested ones 2.1,
2.2, …, so a sentence can name "condition 2". An :class:`Explanation` adds what the sync knows
about the user (partner key or skip reason, acknowledged, rejected, read back) and says it all in
one plain sentence. Pure: the service gathers the facts, this module words them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from cohortsync.domain.cohorts import (
    OPERATOR_WORDS,
    CountComparison,
    DateWindow,
    EventCondition,
    LastWindow,
    PropertyCondition,
)

ALL, ANY, NOT = "all", "any", "not"
PROPERTY, EVENT, IN_COHORT, STATIC = "property", "event", "in_cohort", "static"

_COUNT_SYMBOLS = {">=": "≥", "<=": "≤", "!=": "≠", "=": "=", ">": ">", "<": "<"}


def _shown(value: Any) -> str:
    """A value as JSON text (strings quoted, so "1" and 1 differ on the page as in the query)."""
    return orjson.dumps(value).decode()


def property_label(condition: PropertyCondition) -> str:
    """``plan equals "pro"``, ``$email is set``, ``age between 18 and 30``."""
    name, op, value = condition.property, condition.op, condition.value
    if op == "is_set":
        return f"{name} is set"
    if op == "is_not_set":
        return f"{name} is not set"
    if op == "between":
        low, high = value
        return f"{name} between {_shown(low)} and {_shown(high)}"
    if op in ("in", "not_in"):
        return f"{name} {OPERATOR_WORDS[op]} {', '.join(_shown(v) for v in value)}"
    return f"{name} {OPERATOR_WORDS[op]} {_shown(value)}"


def _plural(amount: int, unit: str) -> str:
    return f"{amount} {unit}" if amount == 1 else f"{amount} {unit}s"


def window_label(within: LastWindow | DateWindow | None) -> str:
    """`` in the last 30 days``, `` between 2026-01-01 and 2026-01-31``, or nothing (ever)."""
    if isinstance(within, LastWindow):
        return f" in the last {_plural(within.amount, within.unit)}"
    if isinstance(within, DateWindow):
        return f" between {within.start.isoformat()} and {within.end.isoformat()}"
    return ""


def event_label(condition: EventCondition) -> str:
    """``Purchase ≥ 2 in the last 30 days where amount > 20``."""
    count = condition.count
    text = f"{condition.event} {_COUNT_SYMBOLS[count.op]} {count.value}"
    text += window_label(condition.within)
    if condition.where:
        text += " where " + " and ".join(property_label(f) for f in condition.where)
    return text


def _day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def window_range(within: LastWindow | DateWindow | None, now_ms: int) -> tuple[int, int] | None:
    """The first and last millisecond (both included) an event may have to count, or None for
    any time; the windows of the cohort compiler (see ``domain.cohorts``)."""
    if isinstance(within, LastWindow):
        return now_ms - within.milliseconds, now_ms
    if isinstance(within, DateWindow):
        return _day_ms(within.start), _day_ms(within.end + timedelta(days=1)) - 1
    return None


def _window_json(within: LastWindow | DateWindow | None) -> dict[str, Any] | None:
    if isinstance(within, LastWindow):
        return {"last": within.amount, "unit": within.unit}
    if isinstance(within, DateWindow):
        return {"between": [within.start.isoformat(), within.end.isoformat()]}
    return None


def _required(count: CountComparison) -> dict[str, Any]:
    return {"op": count.op, "value": count.value}


@dataclass(frozen=True)
class ConditionCheck:
    """One node of a cohort definition as it holds for one user, and what decided it."""

    number: str  # "2", "2.1"; "" for the whole definition
    kind: str  # all | any | not | property | event | in_cohort | static
    label: str  # the condition in words
    met: bool
    finding: str  # what decided it, in words: 'plan is "free"', "1 event", "not in it"
    facts: Mapping[str, Any] = field(default_factory=dict)  # the deciding values, as JSON
    items: tuple[ConditionCheck, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The API shape: a node with its facts, and its items for a group or ``not``."""
        body: dict[str, Any] = {
            "number": self.number,
            "kind": self.kind,
            "label": self.label,
            "met": self.met,
            "finding": self.finding,
            **self.facts,
        }
        if self.kind in (ALL, ANY, NOT):
            body["items"] = [item.as_json() for item in self.items]
        return body

    def why_not(self) -> str:
        """The unmet condition that keeps the user out, with its finding (for an unmet node)."""
        if self.kind == ALL:
            first = next((item for item in self.items if not item.met), None)
            if first is not None:
                return first.why_not()
        return f"condition {self.number} ({self.label}) is not met: {self.finding}"


def property_check(
    number: str, condition: PropertyCondition, met: bool, properties: Mapping[str, Any]
) -> ConditionCheck:
    """A profile-property condition and the user's value of that property."""
    name = condition.property
    present = properties.get(name) is not None
    actual = properties.get(name)
    return ConditionCheck(
        number,
        PROPERTY,
        property_label(condition),
        met,
        f"{name} is {_shown(actual)}" if present else f"{name} is not set",
        {
            "property": name,
            "op": condition.op,
            "value": list(condition.value)
            if isinstance(condition.value, tuple)
            else condition.value,
            "actual": actual,
            "is_set": present,
        },
    )


def event_check(number: str, condition: EventCondition, count: int) -> ConditionCheck:
    """An event condition: the user's matching events in the window against the required count."""
    return ConditionCheck(
        number,
        EVENT,
        event_label(condition),
        condition.count.holds(count),
        _plural(count, "event"),
        {
            "event": condition.event,
            "count": count,
            "required": _required(condition.count),
            "within": _window_json(condition.within),
        },
    )


def cohort_check(number: str, cohort_id: int, name: str | None, met: bool) -> ConditionCheck:
    """An ``in_cohort`` reference: whether the user is in that cohort now."""
    label = f"in cohort {cohort_id}" + (f" ({name})" if name else "")
    finding = "they are in it" if met else "they are not in it"
    facts = {"cohort_id": cohort_id, "cohort_name": name}
    return ConditionCheck(number, IN_COHORT, label, met, finding, facts)


def static_check(met: bool) -> ConditionCheck:
    """A static cohort: the user is on its uploaded list or not."""
    finding = "on the list" if met else "not on the list"
    return ConditionCheck("1", STATIC, "on the cohort's uploaded list", met, finding)


def group_check(number: str, kind: str, items: Sequence[ConditionCheck]) -> ConditionCheck:
    """``all`` or ``any`` of ``items``."""
    held = sum(item.met for item in items)
    met = held == len(items) if kind == ALL else held > 0
    label = f"{kind} of {_plural(len(items), 'condition')}"
    return ConditionCheck(number, kind, label, met, f"{held} of {len(items)} met", {}, tuple(items))


def not_check(number: str, item: ConditionCheck) -> ConditionCheck:
    """The negation of ``item``: met when the item is not."""
    return ConditionCheck(
        number, NOT, f"not ({item.label})", not item.met, item.finding, {}, (item,)
    )


@dataclass(frozen=True)
class Rejected:
    """The partner's last refusal of the user's key (kept until a run gets it through)."""

    key: str
    op: str
    reason: str
    run_id: int

    def as_json(self) -> dict[str, Any]:
        """The API shape."""
        return {"key": self.key, "op": self.op, "reason": self.reason, "run_id": self.run_id}


@dataclass(frozen=True)
class ReadBack:
    """What the partner's list held when the sync last read it back (R-X-2)."""

    held: bool
    as_of: datetime

    def as_json(self) -> dict[str, Any]:
        """The API shape."""
        return {"held": self.held, "as_of": self.as_of.isoformat()}


@dataclass(frozen=True)
class Explanation:
    """Why one user is or is not on one sync's partner list."""

    sync_id: int
    distinct_id: str  # canonical
    ids: tuple[str, ...]
    as_of: datetime
    in_cohort: bool
    definition: ConditionCheck  # an all/any group numbered ""; its items are conditions 1, 2, …
    identified: bool
    partner_key: str | None
    skip_reason: str | None
    acknowledged_key: str | None
    last_rejection: Rejected | None
    on_partner_list: ReadBack | None

    @property
    def on_list(self) -> bool:
        """Whether the partner holds them, as far as we know (acknowledged)."""
        return self.acknowledged_key is not None

    def summary(self) -> str:
        """One plain sentence: on the list or not, and why."""
        key, held = self.partner_key, self.acknowledged_key
        if not self.in_cohort:
            why = self._why_out()
            if held is not None:
                return f"On the list as {held} until the next run takes them off: {why}."
            return f"Not on the list: {why}."
        rejected = self.last_rejection
        if self.skip_reason is not None:
            text = f"Not on the list: in the cohort, but skipped ({self.skip_reason})"
            if held is not None:
                return f"{text}; the next run takes {held} off."
            return f"{text}."
        if rejected is not None and held is None:
            return (
                f"Not on the list: in the cohort, identified, sent as {key}, but the partner "
                f"refused it in run {rejected.run_id}: {rejected.reason}. The next run tries again."
            )
        if held is None:
            return f"Not on the list yet: in the cohort, identified; the next run sends {key}."
        if held != key:
            return f"On the list as {held}: in the cohort; the next run replaces it with {key}."
        return f"On the list: in the cohort, identified, sent as {key}, acknowledged."

    def _why_out(self) -> str:
        root = self.definition
        if root.met:  # the whole-cohort query and the parts disagree: say so, not a guess
            return "not among the cohort's members, though each condition holds now"
        if root.kind == ANY and len(root.items) > 1:
            parts = "; ".join(f"{c.number}. {c.label}: {c.finding}" for c in root.items)
            return f"none of the conditions is met ({parts})"
        return root.why_not()

    def read_back_sentence(self) -> str | None:
        """What the last read-back of the partner's list found, if the list was ever read."""
        seen = self.on_partner_list
        if seen is None:
            return None
        key = self.partner_key or self.acknowledged_key
        when = f"When the list was last read back ({seen.as_of:%Y-%m-%d %H:%M} UTC)"
        if key is None:
            return f"{when}, it held no key of theirs."
        return f"{when}, the partner {'held' if seen.held else 'did not hold'} {key}."

    def as_json(self) -> dict[str, Any]:
        """The API shape (SPEC §11)."""
        return {
            "sync_id": self.sync_id,
            "distinct_id": self.distinct_id,
            "ids": list(self.ids),
            "as_of": self.as_of.isoformat(),
            "in_cohort": self.in_cohort,
            "match": self.definition.kind,
            "conditions": [c.as_json() for c in self.definition.items],
            "identified": self.identified,
            "partner_key": self.partner_key,
            "skip_reason": self.skip_reason,
            "acknowledged": self.on_list,
            "acknowledged_key": self.acknowledged_key,
            "on_partner_list": self.on_partner_list.as_json() if self.on_partner_list else None,
            "last_rejection": self.last_rejection.as_json() if self.last_rejection else None,
            "summary": self.summary(),
            "read_back": self.read_back_sentence(),
        }
