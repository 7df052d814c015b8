"""A cohort definition checked condition by condition for one user, against the stored events
and profile (explain, R-X-4): each with the same compiler a run uses, so the answer agrees with
what a run computes. ``in_cohort`` is the cohort's own members query restricted to the user."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.domain.cohorts import (
    CohortKind,
    CohortReference,
    Condition,
    EventCondition,
    Group,
    Not,
    PropertyCondition,
    parse_definition,
)
from cohortsync.domain.explanation import (
    ALL,
    ConditionCheck,
    cohort_check,
    event_check,
    group_check,
    not_check,
    property_check,
    static_check,
    window_range,
)
from cohortsync.query.compiler import CohortCompiler
from cohortsync.storage.cohort_store import CohortStore
from cohortsync.storage.tables import events, profiles
from cohortsync.warehouse.profiles import StoredProfile


class UserConditions:
    """Evaluates the nodes of a definition for one canonical user, in one read transaction."""

    def __init__(
        self, connection: Connection, project_id: int, user: StoredProfile, at_ms: int
    ) -> None:
        self._connection = connection
        self._project_id = project_id
        self._user = user
        self._at_ms = at_ms
        # in_cohort references are evaluated with members_query, never inlined by this compiler
        self._compiler = CohortCompiler(connection.dialect.name, project_id, at_ms, lambda _: None)

    def in_cohort(self, cohort_id: int) -> bool:
        """Whether the user is among the cohort's members now (the sync's own query)."""
        members = (
            CohortStore(self._connection)
            .members_query(self._project_id, cohort_id, self._at_ms, with_properties=False)
            .subquery()
        )
        found = sa.select(members.c.distinct_id).where(
            members.c.distinct_id == self._user.distinct_id
        )
        return self._connection.execute(found.limit(1)).first() is not None

    def definition(self, cohort_id: int) -> ConditionCheck:
        """The cohort's definition as an all/any group whose items are conditions 1, 2, …"""
        cohort = CohortStore(self._connection).get(self._project_id, cohort_id)
        if cohort.kind == CohortKind.STATIC:
            return group_check("", ALL, [static_check(self.in_cohort(cohort_id))])
        root = parse_definition(cohort.definition)
        group = root if isinstance(root, Group) else Group("all", (root,))
        return self.check(group, "")

    def check(self, condition: Condition, number: str) -> ConditionCheck:
        """One node, its items numbered below it."""
        if isinstance(condition, Group):
            items = [
                self.check(item, f"{number}.{index}" if number else str(index))
                for index, item in enumerate(condition.items, 1)
            ]
            return group_check(number, condition.kind, items)
        if isinstance(condition, Not):
            return not_check(number, self.check(condition.item, f"{number}.1"))
        if isinstance(condition, PropertyCondition):
            return property_check(
                number, condition, self._property_met(condition), self._user.properties
            )
        if isinstance(condition, EventCondition):
            return event_check(number, condition, self._event_count(condition))
        return self._reference(condition, number)

    def _reference(self, condition: CohortReference, number: str) -> ConditionCheck:
        name = CohortStore(self._connection).get(self._project_id, condition.cohort_id).name
        return cohort_check(number, condition.cohort_id, name, self.in_cohort(condition.cohort_id))

    def _property_met(self, condition: PropertyCondition) -> bool:
        """The compiler's predicate on the user's profile (none: the document is NULL, as for a
        member seen only in events), unknown taken as false as the compiler takes it."""
        user = sa.select(sa.literal(self._user.distinct_id).label("distinct_id")).subquery("user")
        joined = user.outerjoin(
            profiles,
            sa.and_(
                profiles.c.project_id == self._project_id,
                profiles.c.distinct_id == user.c.distinct_id,
            ),
        )
        predicate = self._compiler.property_predicate(profiles.c.properties, condition)
        query = sa.select(sa.case((predicate, True), else_=False)).select_from(joined)
        return bool(self._connection.execute(query).scalar_one())

    def _event_count(self, condition: EventCondition) -> int:
        """How many of the user's events (under any of their ids) match, in the window."""
        filters = [
            events.c.project_id == self._project_id,
            events.c.event == condition.event,
            events.c.distinct_id.in_(self._user.ids),
            *(self._compiler.property_predicate(events.c.properties, f) for f in condition.where),
        ]
        window = window_range(condition.within, self._at_ms)
        if window is not None:
            filters.append(events.c.time.between(*window))
        query = sa.select(sa.func.count()).select_from(events).where(*filters)
        return int(self._connection.execute(query).scalar_one())
