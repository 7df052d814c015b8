"""Members a run skipped or the partner rejected, one row each with the reason (R-SYN-7), so an
admin asking "why is Kim not on the list?" finds the answer in the run's report.

Only the newest runs of a sync keep their rows (``KEPT_RUNS``): a dynamic sync runs every
15 minutes, and a large cohort may skip many members each time.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cohortsync.destinations.base import Rejection
from cohortsync.storage.database import RowBuffer, write_transaction
from cohortsync.storage.tables import sync_run_members, sync_runs
from cohortsync.sync.diff import Change

SKIPPED = "skipped"
REJECTED = "rejected"
KEPT_RUNS = 20
CHUNK = 5_000


class SkipRecorder:
    """Stores a run's skipped members in chunks as planning finds them."""

    def __init__(self, engine: Engine, run_id: int) -> None:
        self._rows = RowBuffer(engine, sync_run_members, CHUNK)
        self._run_id = run_id
        with write_transaction(engine) as connection:  # a run planned again starts afresh
            connection.execute(
                sync_run_members.delete().where(
                    sync_run_members.c.run_id == run_id, sync_run_members.c.outcome == SKIPPED
                )
            )

    def skip(self, distinct_id: str, reason: str, key: str | None = None) -> None:
        """Record one skipped member (with the partner key, where it was the reason)."""
        self._rows.add(
            {
                "run_id": self._run_id,
                "outcome": SKIPPED,
                "distinct_id": distinct_id,
                "member_key": key,
                "reason": reason,
            }
        )

    def flush(self) -> None:
        """Store what is queued."""
        self._rows.flush()


def record_rejections(
    connection: Connection, run_id: int, changes: Sequence[Change], refused: Sequence[Rejection]
) -> None:
    """Record the members a batch had refused, in the checkpoint's transaction (a re-sent batch
    replaces its earlier rows)."""
    if not refused:
        return
    owners = {c.key: c.distinct_id for c in changes}
    rows = {
        owners.get(r.key) or r.key: {
            "run_id": run_id,
            "outcome": REJECTED,
            "distinct_id": owners.get(r.key) or r.key,
            "member_key": r.key,
            "reason": r.reason[:1000],
        }
        for r in refused
    }
    connection.execute(
        sync_run_members.delete().where(
            sync_run_members.c.run_id == run_id,
            sync_run_members.c.outcome == REJECTED,
            sync_run_members.c.distinct_id.in_(list(rows)),
        )
    )
    connection.execute(sync_run_members.insert(), list(rows.values()))


def prune(connection: Connection, sync_id: int) -> None:
    """Forget the members of all but the sync's newest ``KEPT_RUNS`` runs."""
    newest = (
        sa.select(sync_runs.c.id)
        .where(sync_runs.c.sync_id == sync_id)
        .order_by(sync_runs.c.id.desc())
        .limit(KEPT_RUNS)
    )
    oldest_kept = connection.execute(
        sa.select(sa.func.min(newest.subquery().c.id))
    ).scalar_one_or_none()
    if oldest_kept is None:
        return
    older = sa.select(sync_runs.c.id).where(
        sync_runs.c.sync_id == sync_id, sync_runs.c.id < oldest_kept
    )
    connection.execute(sync_run_members.delete().where(sync_run_members.c.run_id.in_(older)))
