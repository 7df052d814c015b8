"""The acknowledged state and the run plan in the database, and the per-batch checkpoint.

A checkpoint is one transaction: the members the partner took become acknowledged (or leave the
acknowledged state), refusals are recorded, and the run's cursor moves past the batch. A restart
therefore re-sends at most the one batch that was in flight (R-SYN-4).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cohortsync.destinations.base import Rejection
from cohortsync.domain.syncs import RunCounts
from cohortsync.storage.database import RowBuffer, read_transaction, write_transaction
from cohortsync.storage.tables import sync_members, sync_plan, sync_rejections, sync_runs
from cohortsync.sync.diff import ADD, REMOVE, Acknowledged, Change
from cohortsync.sync.outcomes import record_rejections
from cohortsync.warehouse.sql import upsert

# Removals are numbered below adds, so a run sends them first: a key that moves from one user to
# another is taken off before it is put back on.
ADD_SEQ_BASE = 1 << 40
PLAN_CHUNK = 5_000


def code_point_order(connection: Connection, column: Any) -> Any:
    """``column`` ordered by code point, as Python compares strings (PostgreSQL: "C" collation)."""
    return column.collate("C") if connection.dialect.name == "postgresql" else column


def acknowledged(connection: Connection, sync_id: int) -> Iterator[Acknowledged]:
    """The sync's acknowledged members, streamed in distinct_id order."""
    query = (
        sa.select(
            sync_members.c.distinct_id,
            sync_members.c.member_key,
            sync_members.c.fields,
        )
        .where(sync_members.c.sync_id == sync_id)
        .order_by(code_point_order(connection, sync_members.c.distinct_id))
    )
    result = connection.execution_options(stream_results=True, yield_per=2_000).execute(query)
    for row in result:
        yield Acknowledged(row[0], row[1], row[2])


def acknowledged_members(engine: Engine, sync_id: int, page: int = 5_000) -> Iterator[Change]:
    """The sync's acknowledged members with the fields last sent, a page per short read
    transaction (so a long upload of them holds no transaction open)."""
    after = ""
    while True:
        with read_transaction(engine) as connection:
            order = code_point_order(connection, sync_members.c.distinct_id)
            rows = connection.execute(
                sa.select(
                    sync_members.c.distinct_id, sync_members.c.member_key, sync_members.c.fields
                )
                .where(sync_members.c.sync_id == sync_id, order > after)
                .order_by(order)
                .limit(page)
            ).all()
        for row in rows:
            yield Change(ADD, row[0], row[1], row[2])
        if len(rows) < page:
            return
        after = rows[-1][0]


def acknowledged_count(connection: Connection, sync_id: int) -> int:
    """How many members the partner holds for this sync, as far as we know."""
    return int(
        connection.execute(
            sa.select(sa.func.count()).where(sync_members.c.sync_id == sync_id)
        ).scalar_one()
    )


class PlanWriter:
    """Stores a run's changes in chunks, numbering removals before adds."""

    def __init__(self, engine: Engine, run_id: int) -> None:
        self._rows = RowBuffer(engine, sync_plan, PLAN_CHUNK)
        self._run_id = run_id
        self._removes = 0
        self._adds = 0

    def add(self, change: Change) -> None:
        """Queue one change; stored when the chunk is full."""
        if change.op == REMOVE:
            self._removes += 1
            seq = self._removes
        else:
            self._adds += 1
            seq = ADD_SEQ_BASE + self._adds
        self._rows.add(
            {
                "run_id": self._run_id,
                "seq": seq,
                "op": change.op,
                "distinct_id": change.distinct_id,
                "member_key": change.key,
                "fields": change.fields,
            }
        )

    def flush(self) -> None:
        """Store what is queued."""
        self._rows.flush()


_DELETE_PLANNED = sync_plan.delete().where(
    sync_plan.c.run_id == sa.bindparam("r"), sync_plan.c.seq == sa.bindparam("s")
)
_DELETE_MEMBER = sync_members.delete().where(
    sync_members.c.sync_id == sa.bindparam("s"), sync_members.c.distinct_id == sa.bindparam("d")
)
_DELETE_REJECTION = sync_rejections.delete().where(
    sync_rejections.c.sync_id == sa.bindparam("s"),
    sync_rejections.c.member_key == sa.bindparam("k"),
)


def drop_plan(engine: Engine, run_id: int) -> None:
    """Forget a run's plan (it finished, or is planned again)."""
    with write_transaction(engine) as connection:
        connection.execute(sync_plan.delete().where(sync_plan.c.run_id == run_id))


def drop_duplicate_keys(engine: Engine, sync_id: int, run_id: int) -> list[tuple[str, str]]:
    """Take out of the plan adds whose partner key another member already has (two users with
    one email, say): the partner holds a key once. Returns the (distinct_id, key) taken out."""
    dropped: list[tuple[str, str]] = []
    with write_transaction(engine) as connection:
        plan = sync_plan.alias("p")
        adds = sa.and_(plan.c.run_id == run_id, plan.c.op != REMOVE)
        repeated = (
            sa.select(plan.c.member_key)
            .where(adds)
            .group_by(plan.c.member_key)
            .having(sa.func.count() > 1)
        )
        keys = [row[0] for row in connection.execute(repeated)]
        for key in keys:
            first = connection.execute(
                sa.select(sa.func.min(plan.c.seq)).where(adds, plan.c.member_key == key)
            ).scalar_one()
            later = sa.and_(
                sync_plan.c.run_id == run_id,
                sync_plan.c.op != REMOVE,
                sync_plan.c.member_key == key,
                sync_plan.c.seq != first,
            )
            dropped += [
                (row[0], key)
                for row in connection.execute(sa.select(sync_plan.c.distinct_id).where(later))
            ]
            connection.execute(sync_plan.delete().where(later))
        removed = sa.select(plan.c.distinct_id).where(plan.c.run_id == run_id, plan.c.op == REMOVE)
        held = (
            sa.select(sync_plan.c.seq, sync_plan.c.distinct_id, sync_plan.c.member_key)
            .join(
                sync_members,
                sa.and_(
                    sync_members.c.sync_id == sync_id,
                    sync_members.c.member_key == sync_plan.c.member_key,
                    sync_members.c.distinct_id != sync_plan.c.distinct_id,
                ),
            )
            .where(
                sync_plan.c.run_id == run_id,
                sync_plan.c.op != REMOVE,
                sync_members.c.distinct_id.not_in(removed),
            )
        )
        rows = connection.execute(held).all()
        if rows:
            connection.execute(_DELETE_PLANNED, [{"r": run_id, "s": row.seq} for row in rows])
        dropped += [(row.distinct_id, row.member_key) for row in rows]
    return dropped


def plan_totals(connection: Connection, run_id: int) -> dict[str, int]:
    """How many changes of each kind the stored plan holds."""
    rows = connection.execute(
        sa.select(sync_plan.c.op, sa.func.count())
        .where(sync_plan.c.run_id == run_id)
        .group_by(sync_plan.c.op)
    )
    return {op: int(n) for op, n in rows}


def plan_page(
    connection: Connection, run_id: int, after: int, limit: int
) -> list[tuple[int, Change]]:
    """Up to ``limit`` planned changes after sequence number ``after``, in order, each with its
    sequence number."""
    rows = connection.execute(
        sa.select(sync_plan)
        .where(sync_plan.c.run_id == run_id, sync_plan.c.seq > after)
        .order_by(sync_plan.c.seq)
        .limit(limit)
    )
    return [(r.seq, Change(r.op, r.distinct_id, r.member_key, r.fields)) for r in rows]


@dataclass
class BatchResult:
    """What one batch achieved, to be checkpointed."""

    changes: Sequence[Change]
    accepted: set[str]  # member keys
    rejected: Sequence[Rejection]


def checkpoint(
    connection: Connection,
    sync_id: int,
    run_id: int,
    batch: BatchResult,
    cursor: int,
    counts: RunCounts,
) -> None:
    """Record a batch's outcome and move the run's cursor, in the caller's transaction.

    Single-row statements by primary key (executemany), so each is an index lookup whatever
    the planner believes about the table's size.
    """
    taken = [c for c in batch.changes if c.key in batch.accepted]
    gone = [c for c in taken if c.op == REMOVE]
    kept = [c for c in taken if c.op != REMOVE]
    if gone:
        connection.execute(_DELETE_MEMBER, [{"s": sync_id, "d": c.distinct_id} for c in gone])
    upsert(
        connection,
        sync_members,
        [
            {
                "sync_id": sync_id,
                "distinct_id": c.distinct_id,
                "member_key": c.key,
                "fields": c.fields,
            }
            for c in kept
        ],
        keys=("sync_id", "distinct_id"),
        update=("member_key", "fields"),
    )
    had_rejections = connection.execute(
        sa.select(sync_rejections.c.member_key).where(sync_rejections.c.sync_id == sync_id).limit(1)
    ).first()
    if had_rejections is not None and taken:
        connection.execute(_DELETE_REJECTION, [{"s": sync_id, "k": c.key} for c in taken])
    if batch.rejected:
        ops = {c.key: c.op for c in batch.changes}
        refused = list({r.key: r for r in batch.rejected}.values())
        connection.execute(_DELETE_REJECTION, [{"s": sync_id, "k": r.key} for r in refused])
        connection.execute(
            sync_rejections.insert(),
            [
                {
                    "sync_id": sync_id,
                    "member_key": r.key,
                    "op": ops.get(r.key, ADD),
                    "reason": r.reason[:1000],
                    "run_id": run_id,
                }
                for r in refused
            ],
        )
        record_rejections(connection, run_id, batch.changes, refused)
        held = [r.key for r in refused if ops.get(r.key) == REMOVE]
        if held:  # still on the list: a later add of the same key must wait for the next run
            connection.execute(
                sync_plan.delete().where(
                    sync_plan.c.run_id == run_id,
                    sync_plan.c.seq > cursor,
                    sync_plan.c.op != REMOVE,
                    sync_plan.c.member_key.in_(held),
                )
            )
    counts.removed += len(gone)
    counts.added += sum(1 for c in kept if c.op == ADD)
    counts.updated += sum(1 for c in kept if c.op != ADD)
    for rejection in batch.rejected:
        counts.rejected[rejection.reason] += 1
    connection.execute(
        sync_runs.update()
        .where(sync_runs.c.id == run_id)
        .values(cursor=cursor, batches=sync_runs.c.batches + 1, counts=counts.as_json())
    )
