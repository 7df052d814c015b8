"""Explain (R-X-4, R-SYN-12): gather, for one user and one sync, what decides whether the partner's
list holds them, from the database alone (the partner is never called: its read budget is small).

Membership of the cohort is the sync's own query (``members_query``) restricted to the user, so the
answer agrees with what a run would compute. The conditions are then evaluated one by one with the
same compiler: a profile-property condition as the compiler's predicate on the user's profile, an
event condition as the count of the user's matching events (every id of the user) against the
required count, ``in_cohort`` as that cohort's query restricted to the user; groups combine them.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cohortsync.clock import Clock, now_ms
from cohortsync.destinations.base import PartnerMember, Skip
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
from cohortsync.domain.errors import Conflict, NotFound
from cohortsync.domain.explanation import (
    ALL,
    ConditionCheck,
    Explanation,
    ReadBack,
    Rejected,
    cohort_check,
    event_check,
    group_check,
    not_check,
    property_check,
    static_check,
    window_range,
)
from cohortsync.domain.identity import DEVICE_PREFIX
from cohortsync.query.compiler import CohortCompiler
from cohortsync.storage.cohort_store import CohortStore
from cohortsync.storage.database import read_transaction
from cohortsync.storage.sync_store import SyncStore
from cohortsync.storage.tables import events, profiles
from cohortsync.sync.plan import partner_view
from cohortsync.sync.ports import Destinations
from cohortsync.warehouse.profiles import StoredProfile, get_profile

DISCONNECTED = "integration disconnected"


class UnknownUser(NotFound):
    """No event or profile names this id in the project."""


class _Evaluator:
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


class Explainer:
    """Answers "why is (or isn't) this person on the partner's list?" for a project's syncs."""

    def __init__(self, engine: Engine, destinations: Destinations, clock: Clock) -> None:
        self._engine = engine
        self._destinations = destinations
        self._clock = clock

    def explain(self, project_id: int, sync_id: int, any_id: str) -> Explanation:
        """The explanation for the user known by ``any_id``; NotFound for an unknown sync, and
        UnknownUser when no event or profile names the id."""
        at = self._clock.now()
        with read_transaction(self._engine) as connection:
            store = SyncStore(connection)
            try:
                sync = store.get(sync_id, at)
            except NotFound:
                sync = None
            if sync is None or sync.project_id != project_id:
                raise NotFound(f"sync {sync_id} does not exist in project {project_id}")
            user = _find_user(connection, project_id, any_id)
            evaluator = _Evaluator(connection, project_id, user, now_ms(self._clock))
            in_cohort = evaluator.in_cohort(sync.cohort_id)
            definition = evaluator.definition(sync.cohort_id)
            held = store.acknowledged_key(sync_id, user.distinct_id)
        outcome = self._partner_view(project_id, sync.integration_id, user)
        key = outcome.key if isinstance(outcome, PartnerMember) else None
        with read_transaction(self._engine) as connection:
            store = SyncStore(connection)
            rejection = _last_rejection(store, sync_id, [k for k in (key, held) if k])
            read_back = _read_back(store, sync_id, sync.read_back_at, key or held)
        return Explanation(
            sync_id=sync_id,
            distinct_id=user.distinct_id,
            ids=tuple(user.ids),
            as_of=at,
            in_cohort=in_cohort,
            definition=definition,
            identified=user.identified,
            partner_key=key,
            skip_reason=outcome.reason if isinstance(outcome, Skip) else None,
            acknowledged_key=held,
            last_rejection=rejection,
            on_partner_list=read_back,
        )

    def _partner_view(
        self, project_id: int, integration_id: int, user: StoredProfile
    ) -> PartnerMember | Skip:
        """The user as the sync's connector would send them (building it calls nobody)."""
        try:
            integration = self._destinations.get(project_id, integration_id)
            destination = self._destinations.connector(integration)
        except Conflict:
            return Skip(DISCONNECTED)
        try:
            _, outcome = next(partner_view([(user.distinct_id, user.properties)], destination))
        finally:
            destination.close()
        return outcome


def _find_user(connection: Connection, project_id: int, any_id: str) -> StoredProfile:
    """The user known by ``any_id``, or by it as the ``$device_id`` of a device nobody has
    logged in on yet (stored as ``$device:<id>``); UnknownUser if neither names anyone."""
    for candidate in (any_id, f"{DEVICE_PREFIX}{any_id}"):
        user = get_profile(connection, project_id, candidate)
        if user is not None:
            return user
    raise UnknownUser(f"no user with distinct_id {any_id!r} in project {project_id}")


def _last_rejection(store: SyncStore, sync_id: int, keys: list[str]) -> Rejected | None:
    """The partner's standing refusal of one of ``keys`` (the first key wins)."""
    if not keys:
        return None
    found = {
        row["member"]: Rejected(row["member"], row["op"], row["reason"], row["run_id"])
        for row in store.rejections(sync_id, keys=keys)
    }
    return next((found[k] for k in keys if k in found), None)


def _read_back(
    store: SyncStore, sync_id: int, read_back_at: datetime | None, key: str | None
) -> ReadBack | None:
    """Whether the partner held ``key`` when the list was last read back; None if never read."""
    if read_back_at is None:
        return None
    held = key is not None and store.partner_held(sync_id, key)
    return ReadBack(held, read_back_at)
