"""Property: identity links and profile folds read through the DB-API (``select_in``) give the
same merges, identity rows and profiles as the SQLAlchemy ``IN`` look-ups they replaced, on
random stored states and random batches of links, on both engines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Connection, Engine

from cohortsync.clock import SystemClock
from cohortsync.domain.errors import RecordError
from cohortsync.domain.identity import DEVICE_PREFIX, IdentityLink
from cohortsync.domain.profiles import Properties, merge_profiles
from cohortsync.services.projects import ProjectService
from cohortsync.storage.tables import identities, profiles
from cohortsync.warehouse import identities as identity_store
from cohortsync.warehouse import profiles as profile_store
from cohortsync.warehouse.sql import bulk_insert_ignoring
from tests.conftest import NOW_MS

USERS = ["alice", "bob", "carol", "é-user"]
DEVICES = ["d1", "d2", "d3", "d4"]
IDS = [*USERS, *DEVICES, *(f"{DEVICE_PREFIX}{d}" for d in DEVICES)]

# A stored state: clusters (canonical id, its other ids) over distinct ids, and profiles.
clusters = st.lists(
    st.tuples(st.sampled_from(IDS), st.lists(st.sampled_from(IDS), max_size=3)), max_size=4
)
stored_profiles = st.dictionaries(
    st.sampled_from(IDS),
    st.dictionaries(st.sampled_from(["plan", "seen"]), st.sampled_from([1, "pro", "free"])),
    max_size=5,
)
device_link = st.builds(
    lambda user, device: IdentityLink(user, (f"{DEVICE_PREFIX}{device}", device), True),
    st.sampled_from(USERS),
    st.sampled_from(DEVICES),
)
other_link = st.builds(
    lambda into, other, exclusive: IdentityLink(into, (other,), exclusive),
    st.sampled_from(IDS),
    st.sampled_from(IDS),
    st.booleans(),
)
batches = st.lists(st.one_of(device_link, device_link, other_link), max_size=8)


# The look-ups as they were written before: SQLAlchemy ``IN`` lists of 500 ids.
def _linked_before(connection: Connection, project_id: int, ids: Sequence[str]) -> dict[str, str]:
    wanted = list(dict.fromkeys(ids))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        rows = connection.execute(
            sa.select(identities.c.distinct_id, identities.c.canonical_id).where(
                identities.c.project_id == project_id, identities.c.distinct_id.in_(part)
            )
        )
        found.update({row.distinct_id: row.canonical_id for row in rows})
    return found


def _link_many_before(
    connection: Connection, project_id: int, changes: Sequence[IdentityLink]
) -> list[identity_store.Merge]:
    pending: list[IdentityLink] = []
    claimed: set[str] = set()
    for change in changes:
        if any(i in claimed for i in change.ids):
            continue
        claimed.update(change.ids)
        pending.append(change)
    if not pending:
        return []
    existing = _linked_before(connection, project_id, [*claimed, *(c.into for c in pending)])
    rows: list[tuple[int, str, str]] = []
    merges: list[identity_store.Merge] = []
    for change in pending:
        if not change.exclusive or any(i in existing for i in change.ids):
            merges.extend(identity_store.link(connection, project_id, change))
            continue
        target = existing.get(change.into, change.into)
        rows.append((project_id, target, target))
        for identifier in change.ids:
            if identifier != target:
                rows.append((project_id, identifier, target))
                merges.append(identity_store.Merge(absorbed=identifier, canonical=target))
    bulk_insert_ignoring(
        connection, "identities", ("project_id", "distinct_id", "canonical_id"), rows
    )
    return merges


def _load_before(connection: Connection, project_id: int, ids: Sequence[str]) -> dict[str, Any]:
    rows = connection.execute(
        sa.select(profiles.c.distinct_id, profiles.c.properties).where(
            profiles.c.project_id == project_id, profiles.c.distinct_id.in_(list(ids))
        )
    )
    return {r.distinct_id: dict(r.properties) for r in rows}


def _fold_before(
    connection: Connection, project_id: int, merges: Sequence[identity_store.Merge]
) -> None:
    absorbed_profiles = _load_before(connection, project_id, list({m.absorbed for m in merges}))
    merges = [m for m in merges if m.absorbed in absorbed_profiles]
    if not merges:
        return
    current: dict[str, Properties | None] = dict(absorbed_profiles)
    current.update(_load_before(connection, project_id, list({m.canonical for m in merges})))
    changed: dict[str, Properties | None] = {}
    for merge in merges:
        absorbed = current.get(merge.absorbed)
        if absorbed is None:
            continue
        merged = merge_profiles(current.get(merge.canonical), absorbed)
        current[merge.canonical] = changed[merge.canonical] = merged
        current[merge.absorbed] = changed[merge.absorbed] = None
    profile_store._save(connection, project_id, changed, NOW_MS)  # the same writes as before


def _seed(
    connection: Connection,
    project_id: int,
    groups: list[tuple[str, list[str]]],
    people: dict[str, Properties],
) -> None:
    """Consistent clusters (each id in at most one, its canonical id a member of itself)."""
    taken: set[str] = set()
    for canonical, others in groups:
        members = [i for i in dict.fromkeys([canonical, *others]) if i not in taken]
        if canonical in taken or len(members) < 2:
            continue
        taken.update(members)
        connection.execute(
            identities.insert(),
            [
                {"project_id": project_id, "distinct_id": i, "canonical_id": canonical}
                for i in members
            ],
        )
    owner = {row.distinct_id: row.canonical_id for row in connection.execute(sa.select(identities))}
    rows = {owner.get(i, i): p for i, p in people.items()}
    if rows:
        connection.execute(
            profiles.insert(),
            [
                {"project_id": project_id, "distinct_id": i, "properties": p, "updated_at": 0}
                for i, p in rows.items()
            ],
        )


def _outcome(
    connection: Connection, project_id: int, run: Any, batch: list[IdentityLink]
) -> tuple[Any, ...]:
    """The merges (or the refusal), identity rows and profiles a run leaves."""
    try:
        merges: Any = run(connection, project_id, batch)
    except RecordError as error:
        merges = (error.field, error.message)
    links = sorted(
        (r.distinct_id, r.canonical_id) for r in connection.execute(sa.select(identities))
    )
    people = sorted(
        (r.distinct_id, dict(r.properties)) for r in connection.execute(sa.select(profiles))
    )
    return merges, links, people


def _after(connection: Connection, project_id: int, batch: list[IdentityLink]) -> Any:
    merges = identity_store.link_many(connection, project_id, batch)
    profile_store.fold(connection, project_id, merges, NOW_MS)
    return merges


def _before(connection: Connection, project_id: int, batch: list[IdentityLink]) -> Any:
    merges = _link_many_before(connection, project_id, batch)
    _fold_before(connection, project_id, merges)
    return merges


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(groups=clusters, people=stored_profiles, batch=batches)
def test_link_many_and_fold_match_the_sqlalchemy_lookups(
    engine: Engine,
    groups: list[tuple[str, list[str]]],
    people: dict[str, Properties],
    batch: list[IdentityLink],
) -> None:
    project, _ = ProjectService(engine, SystemClock()).ensure_default()
    outcomes = []
    for run in (_before, _after):
        with engine.connect() as connection:
            transaction = connection.begin()
            _seed(connection, project.id, groups, people)
            outcomes.append(_outcome(connection, project.id, run, batch))
            transaction.rollback()
    assert outcomes[0] == outcomes[1]


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stored=st.sets(st.integers(0, 1500), max_size=700),
    asked=st.lists(st.integers(0, 1500), max_size=1200),
)
def test_linked_reads_what_the_in_lists_read(
    engine: Engine, stored: set[int], asked: list[int]
) -> None:
    project, _ = ProjectService(engine, SystemClock()).ensure_default()
    with engine.connect() as connection:
        transaction = connection.begin()
        if stored:
            connection.execute(
                identities.insert(),
                [
                    {"project_id": project.id, "distinct_id": f"ü{i}", "canonical_id": f"c{i % 7}"}
                    for i in stored
                ],
            )
        ids = [f"ü{i}" for i in asked]
        expected = _linked_before(connection, project.id, ids)
        assert identity_store.linked(connection, project.id, ids) == expected
        assert identity_store.resolve(connection, project.id, ids) == {
            i: expected.get(i, i) for i in ids
        }
        transaction.rollback()
