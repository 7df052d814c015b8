"""The identity store: clusters of ids that are one user, resolved to a canonical id."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.domain.errors import RecordError
from cohortsync.domain.identity import MAX_CLUSTER_SIZE, IdentityLink
from cohortsync.storage.tables import identities
from cohortsync.warehouse.sql import bulk_insert_ignoring, insert_ignoring_duplicates, select_in


@dataclass(frozen=True, slots=True)
class Merge:
    """The cluster rooted at ``absorbed`` now belongs to ``canonical``."""

    absorbed: str
    canonical: str


def linked(connection: Connection, project_id: int, ids: Iterable[str]) -> dict[str, str]:
    """The ids among ``ids`` that belong to a cluster, with their canonical id."""
    wanted = list(dict.fromkeys(ids))
    rows = select_in(
        connection, "identities", ("distinct_id", "canonical_id"), project_id, "distinct_id", wanted
    )
    return dict(rows)


def resolve(connection: Connection, project_id: int, ids: Iterable[str]) -> dict[str, str]:
    """Map each id to its canonical id (an id never linked is its own canonical id)."""
    wanted = list(dict.fromkeys(ids))
    found = linked(connection, project_id, wanted)
    return {i: found.get(i, i) for i in wanted}


def cluster_ids(connection: Connection, project_id: int, canonical_id: str) -> list[str]:
    """Every id of the cluster whose canonical id is ``canonical_id``, itself first."""
    rows = connection.execute(
        sa.select(identities.c.distinct_id)
        .where(identities.c.project_id == project_id, identities.c.canonical_id == canonical_id)
        .order_by(identities.c.distinct_id)
    )
    others = [r.distinct_id for r in rows if r.distinct_id != canonical_id]
    return [canonical_id, *others]


def _cluster_size(connection: Connection, project_id: int, canonical_id: str) -> int:
    count = connection.execute(
        sa.select(sa.func.count())
        .select_from(identities)
        .where(identities.c.project_id == project_id, identities.c.canonical_id == canonical_id)
    ).scalar_one()
    return max(int(count), 1)


def link(connection: Connection, project_id: int, change: IdentityLink) -> list[Merge]:
    """Apply one identity link; returns the clusters it absorbed (so profiles can be folded).

    Exclusive links (device→user, alias, auto-alias) skip ids already inside another user's
    cluster; an id that is the root of its own cluster brings that cluster along.
    Merging clusters past 500 ids is refused with a RecordError.
    """
    target = resolve(connection, project_id, [change.into])[change.into]
    members = linked(connection, project_id, change.ids)
    merges: list[Merge] = []
    for identifier in change.ids:
        current = members.get(identifier, identifier)
        if change.exclusive and current != identifier:
            continue  # already belongs to another user's cluster
        if current == target:
            continue
        size = _cluster_size(connection, project_id, target) + _cluster_size(
            connection, project_id, current
        )
        if size > MAX_CLUSTER_SIZE:
            raise RecordError(
                "properties",
                f"merging would make an identity cluster of {size} ids "
                f"(at most {MAX_CLUSTER_SIZE})",
            )
        insert_ignoring_duplicates(
            connection,
            identities,
            [
                {"project_id": project_id, "distinct_id": target, "canonical_id": target},
                {"project_id": project_id, "distinct_id": current, "canonical_id": current},
            ],
        )
        connection.execute(
            identities.update()
            .where(identities.c.project_id == project_id, identities.c.canonical_id == current)
            .values(canonical_id=target)
        )
        merges.append(Merge(absorbed=current, canonical=target))
    return merges


def link_many(
    connection: Connection, project_id: int, changes: Sequence[IdentityLink]
) -> list[Merge]:
    """Apply many exclusive links (the device→user links of an ingestion batch) in order.

    Links whose ids are all new are written in bulk; the rest go through :func:`link`.
    The first link of an id wins, as if applied one by one.
    """
    pending: list[IdentityLink] = []
    claimed: set[str] = set()
    for change in changes:
        if not claimed.isdisjoint(change.ids):
            continue
        claimed.update(change.ids)
        pending.append(change)
    if not pending:
        return []
    existing = linked(connection, project_id, claimed | {c.into for c in pending})
    rows: list[tuple[int, str, str]] = []
    merges: list[Merge] = []
    for change in pending:
        if not change.exclusive or not existing.keys().isdisjoint(change.ids):
            merges.extend(link(connection, project_id, change))
            continue
        target = existing.get(change.into, change.into)
        rows.append((project_id, target, target))
        for identifier in change.ids:
            if identifier != target:
                rows.append((project_id, identifier, target))
                merges.append(Merge(absorbed=identifier, canonical=target))
    bulk_insert_ignoring(
        connection, "identities", ("project_id", "distinct_id", "canonical_id"), rows
    )
    return merges
