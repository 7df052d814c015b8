"""Members a run skipped or the partner rejected, one row each with the reason (R-SYN-7), so an
admin asking "why is Kim not on the list?" finds the answer in the run's report.

Only the newest runs of a sync keep their rows (``KEPT_RUNS``): a dynamic sync runs every
15 minutes, and a large cohort may skip many members each time.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection, Engine

from cohortsync.destinations.base import Rejection
from cohortsync.storage.database import write_transaction
from cohortsync.storage.run_member_store import RunMemberStore, run_member_rows
from cohortsync.sync.diff import Change

SKIPPED = "skipped"
REJECTED = "rejected"
KEPT_RUNS = 20
CHUNK = 5_000


class SkipRecorder:
    """Stores a run's skipped members in chunks as planning finds them."""

    def __init__(self, engine: Engine, run_id: int) -> None:
        self._rows = run_member_rows(engine, CHUNK)
        self._run_id = run_id
        with write_transaction(engine) as connection:  # a run planned again starts afresh
            RunMemberStore(connection).forget(run_id, SKIPPED)

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
    RunMemberStore(connection).replace(run_id, REJECTED, list(rows.values()))


def prune(connection: Connection, sync_id: int) -> None:
    """Forget the members of all but the sync's newest ``KEPT_RUNS`` runs."""
    RunMemberStore(connection).keep_newest(sync_id, KEPT_RUNS)
