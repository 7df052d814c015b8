"""The members a run skipped or the partner rejected, as stored (``sync_run_members``): written
by the sync engine (``sync.outcomes``), read back in (distinct_id, outcome) order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cohortsync.storage.database import RowBuffer, code_point_order
from cohortsync.storage.tables import sync_run_members, sync_runs, syncs


def run_member_rows(engine: Engine, chunk: int) -> RowBuffer:
    """A buffer of ``sync_run_members`` rows, stored ``chunk`` at a time in transactions of their
    own (a run may skip hundreds of thousands of members)."""
    return RowBuffer(engine, sync_run_members, chunk)


class RunMemberStore:
    """A run's skipped and rejected members, read in the caller's transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def run_exists(self, project_id: int, sync_id: int, run_id: int) -> bool:
        """Whether ``run_id`` is a run of sync ``sync_id`` of the project."""
        found = self._connection.execute(
            sa.select(sync_runs.c.id)
            .join(syncs, syncs.c.id == sync_runs.c.sync_id)
            .where(
                sync_runs.c.id == run_id, syncs.c.id == sync_id, syncs.c.project_id == project_id
            )
        ).first()
        return found is not None

    def page(
        self, run_id: int, outcome: str | None, after: tuple[str, str] | None, limit: int
    ) -> list[Any]:
        """Up to ``limit`` rows after ``after`` (distinct_id, outcome), of one outcome or both."""
        table = sync_run_members.c
        distinct_id = code_point_order(self._connection, table.distinct_id)  # same on each engine
        query = sa.select(sync_run_members).where(table.run_id == run_id)
        if outcome is not None:
            query = query.where(table.outcome == outcome)
        if after is not None:
            after_id, after_outcome = after
            query = query.where(
                sa.or_(
                    distinct_id > after_id,
                    sa.and_(table.distinct_id == after_id, table.outcome > after_outcome),
                )
            )
        ordered = query.order_by(distinct_id, table.outcome).limit(limit)
        return list(self._connection.execute(ordered).all())

    def stream(self, run_id: int, chunk: int) -> Iterator[Any]:
        """Every row of the run, in order, fetched ``chunk`` at a time."""
        table = sync_run_members.c
        query = (
            sa.select(sync_run_members)
            .where(table.run_id == run_id)
            .order_by(code_point_order(self._connection, table.distinct_id), table.outcome)
        )
        options = self._connection.execution_options(stream_results=True, yield_per=chunk)
        yield from options.execute(query)

    def forget(self, run_id: int, outcome: str) -> None:
        """Drop the run's rows of one outcome (a run planned again starts afresh)."""
        self._connection.execute(
            sync_run_members.delete().where(
                sync_run_members.c.run_id == run_id, sync_run_members.c.outcome == outcome
            )
        )

    def replace(self, run_id: int, outcome: str, rows: Sequence[dict[str, Any]]) -> None:
        """Store ``rows`` of one outcome, replacing the run's earlier rows of their members."""
        self._connection.execute(
            sync_run_members.delete().where(
                sync_run_members.c.run_id == run_id,
                sync_run_members.c.outcome == outcome,
                sync_run_members.c.distinct_id.in_([r["distinct_id"] for r in rows]),
            )
        )
        self._connection.execute(sync_run_members.insert(), list(rows))

    def keep_newest(self, sync_id: int, runs: int) -> None:
        """Forget the rows of all but the sync's newest ``runs`` runs."""
        newest = (
            sa.select(sync_runs.c.id)
            .where(sync_runs.c.sync_id == sync_id)
            .order_by(sync_runs.c.id.desc())
            .limit(runs)
        )
        oldest_kept = self._connection.execute(
            sa.select(sa.func.min(newest.subquery().c.id))
        ).scalar_one_or_none()
        if oldest_kept is None:
            return
        older = sa.select(sync_runs.c.id).where(
            sync_runs.c.sync_id == sync_id, sync_runs.c.id < oldest_kept
        )
        self._connection.execute(
            sync_run_members.delete().where(sync_run_members.c.run_id.in_(older))
        )
