"""Compile a cohort definition to one SQL query over canonical users (R-COH-5).

The query selects ``distinct_id`` (canonical) from the project's users — everyone seen in events
or profiles — joined to their profile; each condition becomes a two-valued predicate on that
row. ``in_cohort`` inlines the referenced definition (cycles are refused before compiling);
a static cohort is a membership list.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

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
from cohortsync.query.json_access import Document, JsonAccess, Predicate, json_access
from cohortsync.storage.tables import cohort_members, events, identities, profiles

# What an ``in_cohort`` reference stands for: a definition to inline, or None for a static list.
ReferenceResolver = Callable[[int], Condition | None]


def _day_ms(day: Any) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


class CohortCompiler:
    """Builds the SQL for definitions of one project, for one dialect, at one evaluation time."""

    def __init__(
        self, dialect_name: str, project_id: int, now_ms: int, resolve: ReferenceResolver
    ) -> None:
        self._json: JsonAccess = json_access(dialect_name)
        self._project_id = project_id
        self._now_ms = now_ms
        self._resolve = resolve
        self._aliases = 0
        self.users = self._users().cte("users")
        self.profile = profiles.alias("profile")

    def _events_with_identity(self) -> tuple[Any, ColumnElement[str], Any]:
        """Fresh aliases of events joined to identities: (events, canonical id, from clause)."""
        self._aliases += 1
        e = events.alias(f"ev{self._aliases}")
        i = identities.alias(f"id{self._aliases}")
        joined = e.outerjoin(
            i, sa.and_(i.c.project_id == e.c.project_id, i.c.distinct_id == e.c.distinct_id)
        )
        return e, sa.func.coalesce(i.c.canonical_id, e.c.distinct_id), joined

    def _users(self) -> Any:
        e, canonical, joined = self._events_with_identity()
        from_events = (
            sa.select(canonical.label("distinct_id"))
            .select_from(joined)
            .where(e.c.project_id == self._project_id)
        )
        from_profiles = sa.select(profiles.c.distinct_id).where(
            profiles.c.project_id == self._project_id
        )
        return sa.union(from_events, from_profiles)

    def members(self, condition: Condition) -> Select[Any]:
        """SELECT distinct_id, profile properties of the users matching ``condition``."""
        user = self.users.c.distinct_id
        return (
            sa.select(user.label("distinct_id"), self.profile.c.properties)
            .select_from(
                self.users.outerjoin(
                    self.profile,
                    sa.and_(
                        self.profile.c.project_id == self._project_id,
                        self.profile.c.distinct_id == user,
                    ),
                )
            )
            .where(self.predicate(condition))
        )

    def members_of_list(self, reference: CohortReference) -> Select[Any]:
        """SELECT distinct_id, properties of a static cohort's members (known users or not)."""
        listed = cohort_members.c.distinct_id
        return (
            sa.select(listed.label("distinct_id"), self.profile.c.properties)
            .select_from(
                cohort_members.outerjoin(
                    self.profile,
                    sa.and_(
                        self.profile.c.project_id == self._project_id,
                        self.profile.c.distinct_id == listed,
                    ),
                )
            )
            .where(cohort_members.c.cohort_id == reference.cohort_id)
        )

    def predicate(self, condition: Condition) -> Predicate:
        """The two-valued SQL predicate of ``condition`` on the current user row."""
        if isinstance(condition, Group):
            parts = [self.predicate(item) for item in condition.items]
            return sa.and_(*parts) if condition.kind == "all" else sa.or_(*parts)
        if isinstance(condition, Not):
            return sa.not_(self.predicate(condition.item))
        if isinstance(condition, PropertyCondition):
            return self.property_predicate(self.profile.c.properties, condition)
        if isinstance(condition, EventCondition):
            return self._event_predicate(condition)
        return self._reference_predicate(condition)

    def _reference_predicate(self, reference: CohortReference) -> Predicate:
        inlined = self._resolve(reference.cohort_id)
        if inlined is not None:
            return self.predicate(inlined)
        members = sa.select(cohort_members.c.distinct_id).where(
            cohort_members.c.cohort_id == reference.cohort_id
        )
        user: ColumnElement[str] = self.users.c.distinct_id
        return user.in_(members)

    def _typed_equals(self, document: Document, name: str, value: Any) -> Predicate:
        kind = self._json.kind(document, name)
        if isinstance(value, bool):
            return sa.and_(kind == "boolean", self._json.boolean(document, name) == value)
        if isinstance(value, int | float):
            return sa.and_(kind == "number", self._json.number(document, name) == value)
        return sa.and_(kind == "string", self._json.text(document, name) == value)

    def _ordered(self, document: Document, name: str, op: str, value: Any) -> Predicate:
        kind = self._json.kind(document, name)
        if isinstance(value, str):
            left: ColumnElement[Any] = self._json.text(document, name)
            wanted = "string"
        else:
            left, wanted = self._json.number(document, name), "number"
        comparison = {
            "gt": left > value,
            "gte": left >= value,
            "lt": left < value,
            "lte": left <= value,
        }[op]
        return sa.and_(kind == wanted, comparison)

    def _positive(self, document: Document, condition: PropertyCondition) -> Predicate:
        name, op, value = condition.property, condition.op, condition.value
        if op in ("is_set", "is_not_set"):
            kind = self._json.kind(document, name)
            return sa.and_(kind.is_not(None), kind != "null")
        if op in ("equals", "not_equals"):
            return self._typed_equals(document, name, value)
        if op in ("in", "not_in"):
            return sa.or_(*(self._typed_equals(document, name, v) for v in value))
        if op in ("contains", "not_contains"):
            in_list = self._json.list_contains(document, name, value)
            if not isinstance(value, str):
                return in_list
            in_text = sa.and_(
                self._json.kind(document, name) == "string",
                self._json.substring(self._json.text(document, name), value),
            )
            return sa.or_(in_text, in_list)
        if op == "between":
            low, high = value
            return sa.and_(
                self._ordered(document, name, "gte", low),
                self._ordered(document, name, "lte", high),
            )
        return self._ordered(document, name, op, value)

    def property_predicate(self, document: Document, condition: PropertyCondition) -> Predicate:
        """A property condition on a JSON document (profile or event properties)."""
        positive = sa.func.coalesce(self._positive(document, condition), sa.false())
        if condition.op in ("not_equals", "not_contains", "not_in", "is_not_set"):
            return sa.not_(positive)
        return positive

    def _window(
        self, time: ColumnElement[int], within: LastWindow | DateWindow | None
    ) -> list[Predicate]:
        if isinstance(within, LastWindow):
            return [time >= self._now_ms - within.milliseconds, time <= self._now_ms]
        if isinstance(within, DateWindow):
            end = _day_ms(within.end + timedelta(days=1))
            return [time >= _day_ms(within.start), time < end]
        return []

    def _event_predicate(self, condition: EventCondition) -> Predicate:
        e, canonical, joined = self._events_with_identity()
        filters = [
            e.c.project_id == self._project_id,
            e.c.event == condition.event,
            *self._window(e.c.time, condition.within),
            *(self.property_predicate(e.c.properties, f) for f in condition.where),
        ]
        count = sa.func.count()
        op, value = condition.count.op, condition.count.value
        holds = {
            ">=": count >= value,
            ">": count > value,
            "=": count == value,
            "!=": count != value,
            "<": count < value,
            "<=": count <= value,
        }[op]
        per_user = sa.select(canonical).select_from(joined).where(*filters).group_by(canonical)
        user: ColumnElement[str] = self.users.c.distinct_id
        if condition.count.holds(0):
            # Users without any matching event qualify too: exclude those whose count fails.
            return user.not_in(per_user.having(sa.not_(holds)))
        return user.in_(per_user.having(holds))
