"""The acknowledged state and the run plan, and the per-batch checkpoint (R-SYN-4): what the
engine means by the rows ``LedgerStore`` keeps.

A checkpoint is one transaction: the members the partner took become acknowledged (or leave the
acknowledged state), refusals are recorded, and the run's cursor moves past the batch. A restart
therefore re-sends at most the one batch that was in flight.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import starmap

from sqlalchemy.engine import Connection, Engine

from cohortsync.destinations.base import Rejection
from cohortsync.domain.syncs import RunCounts
from cohortsync.storage.database import read_transaction, write_transaction
from cohortsync.storage.ledger_store import LedgerStore, plan_rows
from cohortsync.sync.diff import ADD, REMOVE, Acknowledged, Change
from cohortsync.sync.outcomes import record_rejections

# Removals are numbered below adds, so a run sends them first: a key that moves from one user to
# another is taken off before it is put back on.
ADD_SEQ_BASE = 1 << 40
PLAN_CHUNK = 5_000


def acknowledged(connection: Connection, sync_id: int) -> Iterator[Acknowledged]:
    """The sync's acknowledged members, streamed in distinct_id order."""
    return starmap(Acknowledged, LedgerStore(connection).acknowledged(sync_id))


def acknowledged_members(engine: Engine, sync_id: int, page: int = 5_000) -> Iterator[Change]:
    """The sync's acknowledged members with the fields last sent, a page per short read
    transaction (so a long upload of them holds no transaction open)."""
    after = ""
    while True:
        with read_transaction(engine) as connection:
            rows = LedgerStore(connection).acknowledged_page(sync_id, after, page)
        for distinct_id, key, fields in rows:
            yield Change(ADD, distinct_id, key, fields)
        if len(rows) < page:
            return
        after = rows[-1][0]


def acknowledged_count(connection: Connection, sync_id: int) -> int:
    """How many members the partner holds for this sync, as far as we know."""
    return LedgerStore(connection).acknowledged_count(sync_id)


class PlanWriter:
    """Stores a run's changes in chunks, numbering removals before adds."""

    def __init__(self, engine: Engine, run_id: int) -> None:
        self._rows = plan_rows(engine, PLAN_CHUNK)
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


def drop_plan(engine: Engine, run_id: int) -> None:
    """Forget a run's plan (it finished, or is planned again)."""
    with write_transaction(engine) as connection:
        LedgerStore(connection).drop_plan(run_id)


def drop_duplicate_keys(engine: Engine, sync_id: int, run_id: int) -> list[tuple[str, str]]:
    """Take out of the plan adds whose partner key another member already has (two users with
    one email, say): the partner holds a key once. Returns the (distinct_id, key) taken out."""
    with write_transaction(engine) as connection:
        return LedgerStore(connection).drop_duplicate_keys(sync_id, run_id)


def plan_totals(connection: Connection, run_id: int) -> dict[str, int]:
    """How many changes of each kind the stored plan holds."""
    return LedgerStore(connection).plan_totals(run_id)


def plan_page(
    connection: Connection, run_id: int, after: int, limit: int
) -> list[tuple[int, Change]]:
    """Up to ``limit`` planned changes after sequence number ``after``, in order, each with its
    sequence number."""
    rows = LedgerStore(connection).plan_page(run_id, after, limit)
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
    """Record a batch's outcome and move the run's cursor, in the caller's transaction."""
    ledger = LedgerStore(connection)
    taken = [c for c in batch.changes if c.key in batch.accepted]
    gone = [c for c in taken if c.op == REMOVE]
    kept = [c for c in taken if c.op != REMOVE]
    ledger.forget_members(sync_id, [c.distinct_id for c in gone])
    ledger.keep_members(sync_id, [(c.distinct_id, c.key, c.fields) for c in kept])
    if taken and ledger.has_rejections(sync_id):
        ledger.clear_rejections(sync_id, [c.key for c in taken])
    if batch.rejected:
        ops = {c.key: c.op for c in batch.changes}
        refused = list({r.key: r for r in batch.rejected}.values())
        ledger.clear_rejections(sync_id, [r.key for r in refused])
        ledger.add_rejections(
            [
                {
                    "sync_id": sync_id,
                    "member_key": r.key,
                    "op": ops.get(r.key, ADD),
                    "reason": r.reason[:1000],
                    "run_id": run_id,
                }
                for r in refused
            ]
        )
        record_rejections(connection, run_id, batch.changes, refused)
        held = [r.key for r in refused if ops.get(r.key) == REMOVE]
        if held:  # still on the list: a later add of the same key must wait for the next run
            ledger.drop_later_adds(run_id, cursor, held)
    counts.removed += len(gone)
    counts.added += sum(1 for c in kept if c.op == ADD)
    counts.updated += sum(1 for c in kept if c.op != ADD)
    for rejection in batch.rejected:
        counts.rejected[rejection.reason] += 1
    ledger.advance(run_id, cursor, counts.as_json())
