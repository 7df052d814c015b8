"""The profile store: user and group profiles, updated in arrival order (R-ING-4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.domain.errors import RecordError
from cohortsync.domain.identity import IdentityLink, clevertap_alias
from cohortsync.domain.profile_bounds import ProfileBounds
from cohortsync.domain.profiles import (
    ProfileUpdate,
    Properties,
    apply_operation,
    is_identified,
    merge_profiles,
)
from cohortsync.storage.tables import events, group_profiles, profiles
from cohortsync.warehouse import identities
from cohortsync.warehouse.sql import lock_project, select_in, upsert

IDENTITY_LOCK = "identity"

# The updates of a batch refused by position (an update would take its profile past a bound of
# :mod:`cohortsync.domain.profile_bounds`); the others are applied.
Refused = list[tuple[int, RecordError]]


@dataclass(frozen=True, slots=True)
class StoredProfile:
    """A user as queries see it: canonical id, every id of the cluster, properties."""

    distinct_id: str
    ids: list[str]
    properties: Properties

    @property
    def identified(self) -> bool:
        """Whether the user has at least one profile property (R-ING-6)."""
        return is_identified(self.properties)


def _load(connection: Connection, project_id: int, ids: Sequence[str]) -> dict[str, Properties]:
    found: dict[str, Properties] = {}
    for start in range(0, len(ids), 500):
        rows = connection.execute(
            sa.select(profiles.c.distinct_id, profiles.c.properties).where(
                profiles.c.project_id == project_id,
                profiles.c.distinct_id.in_(list(ids[start : start + 500])),
            )
        )
        found.update({r.distinct_id: dict(r.properties) for r in rows})
    return found


def _save(
    connection: Connection,
    project_id: int,
    changed: dict[str, Properties | None],
    now_ms: int,
) -> None:
    deleted = [i for i, p in changed.items() if p is None]
    if deleted:
        connection.execute(
            profiles.delete().where(
                profiles.c.project_id == project_id, profiles.c.distinct_id.in_(deleted)
            )
        )
    rows = [
        {"project_id": project_id, "distinct_id": i, "properties": p, "updated_at": now_ms}
        for i, p in changed.items()
        if p is not None
    ]
    upsert(connection, profiles, rows, ("project_id", "distinct_id"), ("properties", "updated_at"))


def fold(
    connection: Connection, project_id: int, merges: Sequence[identities.Merge], now_ms: int
) -> None:
    """After identity merges, fold each absorbed user's profile into the surviving one."""
    candidates = list({m.absorbed for m in merges})
    found = select_in(
        connection, "profiles", ("distinct_id",), project_id, "distinct_id", candidates
    )
    profiled = {row[0] for row in found}
    merges = [m for m in merges if m.absorbed in profiled]
    if not merges:
        return  # the usual case: the absorbed ids (devices) had no profile of their own
    absorbed_profiles = _load(connection, project_id, list({m.absorbed for m in merges}))
    current: dict[str, Properties | None] = dict(absorbed_profiles)
    current.update(_load(connection, project_id, list({m.canonical for m in merges})))
    changed: dict[str, Properties | None] = {}
    for merge in merges:
        absorbed = current.get(merge.absorbed)
        if absorbed is None:
            continue
        merged = merge_profiles(current.get(merge.canonical), absorbed)
        current[merge.canonical] = changed[merge.canonical] = merged
        current[merge.absorbed] = changed[merge.absorbed] = None
    _save(connection, project_id, changed, now_ms)


def apply_updates(
    connection: Connection, project_id: int, updates: Sequence[ProfileUpdate], now_ms: int
) -> Refused:
    """Apply ``updates`` in order to the users they name (by any id of the user); those that
    would take a profile past its bounds are skipped and returned by position.

    A ``$set``/``$set_once`` of ``$CleverTap_user_id`` makes that id an alias of the user.
    """
    if not updates:
        return []
    lock_project(connection, project_id, IDENTITY_LOCK)
    canonical = identities.resolve(connection, project_id, [u.distinct_id for u in updates])
    state: dict[str, Properties | None] = dict(
        _load(connection, project_id, list(set(canonical.values())))
    )
    changed: dict[str, Properties | None] = {}
    aliases: list[IdentityLink] = []
    bounds = ProfileBounds()
    refused: Refused = []
    for position, update in enumerate(updates):
        owner = canonical[update.distinct_id]
        before = state.get(owner)
        result = apply_operation(before, update.operation, update.value)
        problem = bounds.check(owner, before, result, update.operation, update.value)
        if problem is not None:
            refused.append((position, problem))
            continue
        state[owner] = changed[owner] = result
        if update.operation in ("$set", "$set_once"):
            alias = clevertap_alias(owner, update.value)
            if alias is not None:
                aliases.append(alias)
    _save(connection, project_id, changed, now_ms)
    fold(connection, project_id, identities.link_many(connection, project_id, aliases), now_ms)
    return refused


def get_profile(connection: Connection, project_id: int, any_id: str) -> StoredProfile | None:
    """The user known by ``any_id``, or None when neither events nor a profile name them."""
    canonical = identities.resolve(connection, project_id, [any_id])[any_id]
    ids = identities.cluster_ids(connection, project_id, canonical)
    found = _load(connection, project_id, [canonical])
    if canonical not in found and len(ids) == 1 and not _has_events(connection, project_id, ids):
        return None
    return StoredProfile(canonical, ids, found.get(canonical, {}))


def _has_events(connection: Connection, project_id: int, ids: Sequence[str]) -> bool:
    query = sa.select(events.c.id).where(
        events.c.project_id == project_id, events.c.distinct_id.in_(list(ids))
    )
    return connection.execute(query.limit(1)).first() is not None


@dataclass(frozen=True, slots=True)
class GroupUpdate:
    """One validated operation on one group profile."""

    group_key: str
    group_id: str
    operation: str
    value: Any


def apply_group_updates(
    connection: Connection, project_id: int, updates: Sequence[GroupUpdate], now_ms: int
) -> Refused:
    """Apply group profile ``updates`` in order; those that would take a group profile past
    its bounds are skipped and returned by position."""
    if not updates:
        return []
    lock_project(connection, project_id, "groups")
    state: dict[tuple[str, str], Properties | None] = {}
    for key in {(u.group_key, u.group_id) for u in updates}:
        row = connection.execute(
            sa.select(group_profiles.c.properties).where(
                group_profiles.c.project_id == project_id,
                group_profiles.c.group_key == key[0],
                group_profiles.c.group_id == key[1],
            )
        ).first()
        state[key] = dict(row.properties) if row else None
    bounds = ProfileBounds()
    refused: Refused = []
    for position, update in enumerate(updates):
        key = (update.group_key, update.group_id)
        result = apply_operation(state[key], update.operation, update.value)
        problem = bounds.check(key, state[key], result, update.operation, update.value)
        if problem is not None:
            refused.append((position, problem))
            continue
        state[key] = result
    for (group_key, group_id), props in state.items():
        where = sa.and_(
            group_profiles.c.project_id == project_id,
            group_profiles.c.group_key == group_key,
            group_profiles.c.group_id == group_id,
        )
        connection.execute(group_profiles.delete().where(where))
        if props is not None:
            connection.execute(
                group_profiles.insert().values(
                    project_id=project_id,
                    group_key=group_key,
                    group_id=group_id,
                    properties=props,
                    updated_at=now_ms,
                )
            )
    return refused


def profiled_ids(connection: Connection, project_id: int, limit: int | None = None) -> list[str]:
    """distinct_ids of the project's profiles (the first ``limit`` of them, when given)."""
    query = sa.select(profiles.c.distinct_id).where(profiles.c.project_id == project_id)
    if limit is not None:
        query = query.limit(limit)
    return [str(row[0]) for row in connection.execute(query)]
