"""Compile a cohort definition to one SQL query over canonical users (R-COH-5).

Each condition becomes a two-valued predicate on a candidate user row. Candidates come from the
narrowest source that holds every member: the profiles matching a positive property condition,
the users who did a required event, a static list, a union of those for ``any`` — and only when
nothing narrower exists (a top-level ``not``), every user seen in events or profiles. The
condition that produced the candidates is not tested twice. ``in_cohort`` inlines the referenced
definition (cycles are refused before compiling); a static cohort is a membership list.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from cohortsync.domain.cohorts import (
    COUNT_COMPARISONS,
    NEGATIVE_OPERATORS,
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


def _two_valued(predicate: Predicate) -> Predicate:
    """NULL (unknown, from a missing property) as false, so that NOT of it is true."""
    return sa.func.coalesce(predicate, sa.false())


def _day_ms(day: Any) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


class CohortCompiler:
    """Builds the SQL for definitions of one project, for one dialect, at one evaluation time."""

    def __init__(
        self, dialect_name: str, project_id: int, now_ms: int, resolve: ReferenceResolver
    ) -> None:
        self._json: JsonAccess = json_access(dialect_name)
        self._dialect = dialect_name
        self._project_id = project_id
        self._now_ms = now_ms
        self._resolve = resolve
        self._resolved: dict[int, Condition | None] = {}
        self._aliases = 0
        self._needs_profile = False
        self.profile = profiles.alias("profile")

    def _events(self) -> Any:
        """A fresh alias of the events table."""
        self._aliases += 1
        return events.alias(f"ev{self._aliases}")

    def _with_identity(self, source: Any) -> tuple[ColumnElement[str], Any]:
        """``source`` (rows with a ``distinct_id`` as sent) joined to identities: the canonical
        id and the from clause."""
        i = identities.alias(f"id{self._aliases}")
        joined = source.outerjoin(
            i,
            sa.and_(i.c.project_id == self._project_id, i.c.distinct_id == source.c.distinct_id),
        )
        return sa.func.coalesce(i.c.canonical_id, source.c.distinct_id), joined

    def _everyone(self) -> Select[Any]:
        e = self._events()
        canonical, joined = self._with_identity(e)
        from_events = (
            sa.select(canonical.label("distinct_id"))
            .select_from(joined)
            .where(e.c.project_id == self._project_id)
        )
        from_profiles = sa.select(profiles.c.distinct_id).where(
            profiles.c.project_id == self._project_id
        )
        return sa.select(sa.union(from_events, from_profiles).subquery().c.distinct_id)

    def _reference(self, cohort_id: int) -> Condition | None:
        if cohort_id not in self._resolved:
            self._resolved[cohort_id] = self._resolve(cohort_id)
        return self._resolved[cohort_id]

    def _static_members(self, cohort_id: int) -> Select[Any]:
        return sa.select(cohort_members.c.distinct_id).where(
            cohort_members.c.cohort_id == cohort_id
        )

    def _candidates(self, condition: Condition) -> tuple[Select[Any], Condition | None] | None:
        """A query of user ids containing every member, and the conjunct it already enforces."""
        if isinstance(condition, PropertyCondition):
            if condition.op in NEGATIVE_OPERATORS:
                return None
            matching = sa.select(profiles.c.distinct_id).where(
                profiles.c.project_id == self._project_id,
                self.property_predicate(profiles.c.properties, condition),
            )
            return matching, condition
        if isinstance(condition, EventCondition):
            if condition.count.holds(0):
                return None
            return self._event_users(condition, negate=False), condition
        if isinstance(condition, CohortReference):
            inlined = self._reference(condition.cohort_id)
            if inlined is None:
                return self._static_members(condition.cohort_id), condition
            return self._candidates(inlined)
        if isinstance(condition, Group) and condition.kind == "all":
            for item in condition.items:
                found = self._candidates(item)
                if found is not None:
                    return found
            return None
        if isinstance(condition, Group):
            return self._any_candidates(condition)
        return None

    def _any_candidates(self, condition: Group) -> tuple[Select[Any], Condition | None] | None:
        """The union of the items' candidates; when each item's candidates are exactly its
        members, the union is exactly the group's (and profile conditions share one scan)."""
        parts = [self._candidates(item) for item in condition.items]
        found = [part for part in parts if part is not None]
        if len(found) < len(parts):
            return None
        exact = all(part[1] is item for part, item in zip(found, condition.items, strict=True))
        if exact and all(isinstance(item, PropertyCondition) for item in condition.items):
            one_scan = sa.select(profiles.c.distinct_id).where(
                profiles.c.project_id == self._project_id,
                sa.or_(
                    *(
                        self.property_predicate(profiles.c.properties, item)
                        for item in condition.items
                        if isinstance(item, PropertyCondition)
                    )
                ),
            )
            return one_scan, condition
        union = sa.union(*(part[0] for part in found)).subquery()
        return sa.select(union.c.distinct_id), condition if exact else None

    def members(self, condition: Condition, with_properties: bool = True) -> Select[Any]:
        """SELECT distinct_id (and the profile's properties) of the users matching ``condition``."""
        found = self._candidates(condition)
        source, covered = found if found is not None else (self._everyone(), None)
        candidates = source.subquery("candidates")
        user: ColumnElement[str] = candidates.c.distinct_id
        self._needs_profile = False
        where = self._predicate(condition, user, covered)
        columns: list[ColumnElement[Any]] = [user.label("distinct_id")]
        origin: Any = candidates
        if with_properties or self._needs_profile:
            origin = candidates.outerjoin(
                self.profile,
                sa.and_(
                    self.profile.c.project_id == self._project_id,
                    self.profile.c.distinct_id == user,
                ),
            )
        if with_properties:
            columns.append(self.profile.c.properties)
        query = sa.select(*columns).select_from(origin)
        return query if condition is covered else query.where(where)

    def _predicate(
        self,
        condition: Condition,
        user: ColumnElement[str],
        covered: Condition | None,
        negated: bool = False,
    ) -> Predicate:
        """The two-valued predicate of ``condition`` (of its negation, with ``negated``) on the
        candidate row ``user``.

        Negation is pushed down to the leaves (De Morgan), so a negated event condition becomes
        an anti-join (``NOT EXISTS`` on PostgreSQL) instead of ``NOT (user IN …)``, which
        PostgreSQL can only run as a per-row subplan once the set outgrows ``work_mem``.
        """
        if condition is covered:
            # Every candidate satisfies the condition that produced the candidates.
            return sa.false() if negated else sa.true()
        if isinstance(condition, Group):
            parts = [self._predicate(item, user, covered, negated) for item in condition.items]
            conjunction = (condition.kind == "all") != negated
            return sa.and_(*parts) if conjunction else sa.or_(*parts)
        if isinstance(condition, Not):
            return self._predicate(condition.item, user, covered, not negated)
        if isinstance(condition, PropertyCondition):
            self._needs_profile = True
            test = self.property_predicate(self.profile.c.properties, condition)
            return sa.not_(_two_valued(test)) if negated else test
        if isinstance(condition, EventCondition):
            if condition.count.holds(0):
                # Users without any matching event qualify too: exclude those whose count fails.
                failing = self._event_users(condition, negate=True)
                return self._membership(user, failing, excluded=not negated)
            return self._membership(user, self._event_users(condition, negate=False), negated)
        inlined = self._reference(condition.cohort_id)
        if inlined is not None:
            return self._predicate(inlined, user, covered, negated)
        return self._membership(user, self._static_members(condition.cohort_id), negated)

    def _membership(
        self, user: ColumnElement[str], users: Select[Any], excluded: bool
    ) -> Predicate:
        """``user`` is in (or, with ``excluded``, not in) the ``users`` query; ids are never
        NULL, so NOT IN and NOT EXISTS agree and each dialect gets the form it plans best."""
        if not excluded:
            return user.in_(users)
        if self._dialect != "postgresql":
            return user.not_in(users)
        found = users.subquery()
        return ~sa.exists(sa.select(sa.literal(1)).where(found.c.distinct_id == user))

    def _typed_equals(self, document: Document, name: str, value: Any) -> Predicate:
        if isinstance(value, bool):
            kind = "boolean"
            same: Predicate = self._json.boolean(document, name) == value
        elif isinstance(value, int | float):
            kind, same = "number", self._json.number(document, name) == value
        else:
            kind, same = "string", self._json.text(document, name) == value
        return sa.and_(same, self._json.has_kind(document, name, kind))  # cheap, selective first

    def _one_of(self, document: Document, name: str, values: tuple[Any, ...]) -> Predicate:
        """Typed membership: one IN list per JSON type (an OR per value would nest past
        SQLite's expression depth for a long list)."""
        texts = [v for v in values if isinstance(v, str)]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        flags = sorted({v for v in values if isinstance(v, bool)})
        parts = [self._typed_equals(document, name, flag) for flag in flags]
        if texts:
            listed = self._json.text(document, name).in_(texts)
            parts.append(sa.and_(listed, self._json.has_kind(document, name, "string")))
        if numbers:
            listed = self._json.number(document, name).in_(numbers)
            parts.append(sa.and_(listed, self._json.has_kind(document, name, "number")))
        return sa.or_(*parts)

    def _ordered(self, document: Document, name: str, op: str, value: Any) -> Predicate:
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
        return sa.and_(self._json.has_kind(document, name, wanted), comparison)

    def _positive(self, document: Document, condition: PropertyCondition) -> Predicate:
        name, op, value = condition.property, condition.op, condition.value
        if op in ("is_set", "is_not_set"):
            return self._json.is_present(document, name)
        if op in ("equals", "not_equals"):
            return self._typed_equals(document, name, value)
        if op in ("in", "not_in"):
            return self._one_of(document, name, value)
        if op in ("contains", "not_contains"):
            in_list = self._json.list_contains(document, name, value)
            if not isinstance(value, str):
                return in_list
            in_text = sa.and_(
                self._json.has_kind(document, name, "string"),
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
        """A property condition on a JSON document (profile or event properties).

        A positive test may be NULL where the property is missing, which WHERE and AND/OR treat
        as false; it is made two-valued (COALESCE) only where it is negated.
        """
        positive = self._positive(document, condition)
        if condition.op in NEGATIVE_OPERATORS:
            return sa.not_(_two_valued(positive))
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

    def _event_users(self, condition: EventCondition, *, negate: bool) -> Select[Any]:
        """Users with at least one matching event whose count satisfies the comparison (or,
        with ``negate``, fails it).

        On SQLite events are counted per id as sent first and only then resolved to canonical
        users, so the identity lookup (a B-tree search) runs once per id, not once per event;
        PostgreSQL resolves each event with a hash join, which is cheaper than grouping twice.
        """
        e = self._events()
        filters = [
            e.c.project_id == self._project_id,
            e.c.event == condition.event,
            *self._window(e.c.time, condition.within),
            *(self.property_predicate(e.c.properties, f) for f in condition.where),
        ]
        op, value = condition.count.op, condition.count.value
        simple = condition.count.holds(1) and op in (">=", ">") and not negate
        count: ColumnElement[int] = sa.func.count()
        source: Any = e
        where = filters
        if self._dialect != "postgresql":
            per_id = sa.select(e.c.distinct_id).where(*filters).group_by(e.c.distinct_id)
            if not simple:
                per_id = per_id.add_columns(sa.func.count().label("events"))
            source = per_id.subquery(f"per_id{self._aliases}")
            where = []  # applied inside the per-id count
            if not simple:
                count = sa.func.sum(source.c.events)
        canonical, joined = self._with_identity(source)
        query = (
            sa.select(canonical.label("distinct_id"))
            .select_from(joined)
            .where(*where)
            .group_by(canonical)
        )
        if simple:
            return query  # every user with a matching event has count >= 1: nothing to test
        # a count is a BIGINT on PostgreSQL; a bare value would be cast to the INTEGER type
        # SQLAlchemy gives count(), which overflows above 2**31 - 1
        holds = COUNT_COMPARISONS[op](count, sa.literal(value, sa.BigInteger()))
        return query.having(sa.not_(holds) if negate else holds)
