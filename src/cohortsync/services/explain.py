"""Explain (R-X-4, R-SYN-12): gather, for one user and one sync, what decides whether the partner's
list holds them, from the database alone (the partner is never called: its read budget is small).

The cohort's conditions are checked for the user one by one (``warehouse.condition_checks``, with
the compiler a run uses); the sync's ledger says what was acknowledged, refused and last read back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection, Engine

from cohortsync.clock import Clock, now_ms
from cohortsync.destinations.base import PartnerMember, Skip
from cohortsync.domain.errors import Conflict, NotFound
from cohortsync.domain.explanation import Explanation, ReadBack, Rejected
from cohortsync.domain.identity import DEVICE_PREFIX
from cohortsync.storage.database import read_transaction
from cohortsync.storage.sync_store import SyncStore
from cohortsync.sync.plan import partner_view
from cohortsync.sync.ports import Destinations
from cohortsync.warehouse.condition_checks import UserConditions
from cohortsync.warehouse.profiles import StoredProfile, get_profile

DISCONNECTED = "integration disconnected"


class UnknownUser(NotFound):
    """No event or profile names this id in the project."""


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
            evaluator = UserConditions(connection, project_id, user, now_ms(self._clock))
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
