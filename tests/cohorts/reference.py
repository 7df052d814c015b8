"""A reference evaluator: cohort semantics written plainly in Python over the raw stored rows.

It reads events, identities and profiles with plain SELECTs and does everything else here, so
that the SQL compiler is checked against an independent statement of the rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.domain.cohorts import (
    CohortReference,
    Condition,
    DateWindow,
    EventCondition,
    Group,
    LastWindow,
    Not,
    PropertyCondition,
)
from cohortsync.storage.tables import events, identities, profiles

MISSING = object()


@dataclass
class World:
    """Everything stored for one project, with ids resolved to canonical users."""

    events: list[tuple[str, int, str, dict[str, Any]]]  # name, time, canonical id, properties
    profiles: dict[str, dict[str, Any]]
    users: set[str]


def load_world(connection: Connection, project_id: int) -> World:
    canonical = {
        r.distinct_id: r.canonical_id
        for r in connection.execute(
            sa.select(identities).where(identities.c.project_id == project_id)
        )
    }
    stored = [
        (r.event, r.time, canonical.get(r.distinct_id, r.distinct_id), dict(r.properties))
        for r in connection.execute(sa.select(events).where(events.c.project_id == project_id))
    ]
    people = {
        r.distinct_id: dict(r.properties)
        for r in connection.execute(sa.select(profiles).where(profiles.c.project_id == project_id))
    }
    return World(stored, people, {e[2] for e in stored} | set(people))


def kind(value: Any) -> str | None:
    if value is MISSING:
        return None
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def same(a: Any, b: Any) -> bool:
    """Typed equality: numbers with numbers, strings with strings, booleans with booleans."""
    return kind(a) == kind(b) and bool(a == b)


def ordered(actual: Any, op: str, value: Any) -> bool:
    wanted = "string" if isinstance(value, str) else "number"
    if kind(actual) != wanted:
        return False
    return bool(
        {
            "gt": actual > value,
            "gte": actual >= value,
            "lt": actual < value,
            "lte": actual <= value,
        }[op]
    )


def property_holds(document: dict[str, Any], condition: PropertyCondition) -> bool:
    actual = document.get(condition.property, MISSING)
    op, value = condition.op, condition.value
    if op == "is_set":
        return kind(actual) not in (None, "null")
    if op == "is_not_set":
        return kind(actual) in (None, "null")
    if op == "equals":
        return same(actual, value)
    if op == "not_equals":
        return not same(actual, value)
    if op == "in":
        return any(same(actual, v) for v in value)
    if op == "not_in":
        return not any(same(actual, v) for v in value)
    if op in ("contains", "not_contains"):
        found = (kind(actual) == "string" and isinstance(value, str) and value in actual) or (
            kind(actual) == "array" and any(same(element, value) for element in actual)
        )
        return found if op == "contains" else not found
    if op == "between":
        return ordered(actual, "gte", value[0]) and ordered(actual, "lte", value[1])
    return ordered(actual, op, value)


def in_window(time: int, within: LastWindow | DateWindow | None, now_ms: int) -> bool:
    if within is None:
        return True
    if isinstance(within, LastWindow):
        return now_ms - within.milliseconds <= time <= now_ms
    start = datetime(within.start.year, within.start.month, within.start.day, tzinfo=UTC)
    end = datetime(within.end.year, within.end.month, within.end.day, tzinfo=UTC) + timedelta(
        days=1
    )
    return start.timestamp() * 1000 <= time < end.timestamp() * 1000


def evaluate(
    world: World,
    condition: Condition,
    now_ms: int,
    resolve: Callable[[int], Condition | set[str]] = lambda _: set(),
) -> set[str]:
    """The canonical users that satisfy ``condition``."""

    def holds(user: str, node: Condition) -> bool:
        if isinstance(node, Group):
            results = (holds(user, item) for item in node.items)
            return all(results) if node.kind == "all" else any(results)
        if isinstance(node, Not):
            return not holds(user, node.item)
        if isinstance(node, PropertyCondition):
            return property_holds(world.profiles.get(user, {}), node)
        if isinstance(node, CohortReference):
            target = resolve(node.cohort_id)
            return user in target if isinstance(target, set) else holds(user, target)
        assert isinstance(node, EventCondition)
        count = sum(
            1
            for name, time, owner, properties in world.events
            if owner == user
            and name == node.event
            and in_window(time, node.within, now_ms)
            and all(property_holds(properties, f) for f in node.where)
        )
        return node.count.holds(count)

    return {user for user in world.users if holds(user, condition)}
