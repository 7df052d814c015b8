"""Syncs and their runs as stored: their rows, the row <-> domain mapping, and every status
change, each checked against the allowed moves (``domain.sync_status``)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from cohortsync.clock import as_utc
from cohortsync.domain.cohort_guard import ActiveExport
from cohortsync.domain.errors import NotFound
from cohortsync.domain.integrations import IntegrationStatus
from cohortsync.domain.status_moves import allowed_from, check_move
from cohortsync.domain.sync_status import (
    RUN_MOVES,
    SYNC_MOVES,
    UNFINISHED,
    RunStatus,
    RunTrigger,
    SyncMode,
    SyncStatus,
)
from cohortsync.domain.syncs import RunCounts, Sync, SyncRun
from cohortsync.storage.database import move_status
from cohortsync.storage.tables import (
    integrations,
    sync_members,
    sync_partner_keys,
    sync_rejections,
    sync_runs,
    syncs,
)


def _utc(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


def _sync(row: Any, now: datetime) -> Sync:
    lease_until = _utc(row.lease_until)
    return Sync(
        id=row.id,
        project_id=row.project_id,
        cohort_id=row.cohort_id,
        integration_id=row.integration_id,
        mode=SyncMode(row.mode),
        status=SyncStatus(row.status),
        interval_seconds=row.interval_seconds,
        list_id=row.list_id,
        list_name=row.list_name,
        reconciled_at=_utc(row.reconciled_at),
        read_back_at=_utc(row.read_back_at),
        next_run_at=_utc(row.next_run_at),
        running=row.lease_owner is not None and lease_until is not None and lease_until > now,
        created_by=row.created_by,
        created_at=_utc(row.created_at) or now,
        updated_at=_utc(row.updated_at) or now,
    )


def _run(row: Any) -> SyncRun:
    return SyncRun(
        id=row.id,
        sync_id=row.sync_id,
        status=RunStatus(row.status),
        trigger=RunTrigger(row.trigger),
        session_id=row.session_id,
        as_of_ms=row.as_of_ms,
        started_at=as_utc(row.started_at),
        finished_at=_utc(row.finished_at),
        cursor=row.cursor,
        batches=row.batches,
        counts=RunCounts.from_json(row.counts),
        error=row.error,
        blocked_reason=row.blocked_reason,
        confirmed_by=row.confirmed_by,
        confirmed_at=_utc(row.confirmed_at),
    )


def awaiting_turn() -> ColumnElement[bool]:
    """Active syncs with a next run, an integration that is connected and no blocked run
    waiting for a confirm: the ones the scheduler runs when their time comes."""
    blocked = (
        sa.exists()
        .where(sync_runs.c.sync_id == syncs.c.id, sync_runs.c.status == RunStatus.BLOCKED)
        .correlate(syncs)
    )
    connected = (
        sa.exists()
        .where(
            integrations.c.id == syncs.c.integration_id,
            integrations.c.status == IntegrationStatus.CONNECTED,
        )
        .correlate(syncs)
    )
    return sa.and_(
        syncs.c.status == SyncStatus.ACTIVE, syncs.c.next_run_at.is_not(None), connected, ~blocked
    )


class SyncStore:
    """The syncs and runs of the database, read and written in the caller's transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    # -- syncs ----------------------------------------------------------------------------

    def get(self, sync_id: int, now: datetime) -> Sync:
        """One sync (``running`` while a worker holds an unexpired lease), or NotFound."""
        row = self._connection.execute(sa.select(syncs).where(syncs.c.id == sync_id)).first()
        if row is None:
            raise NotFound(f"sync {sync_id} does not exist")
        return _sync(row, now)

    def for_project(self, project_id: int, now: datetime) -> list[Sync]:
        """The project's syncs, oldest first."""
        rows = self._connection.execute(
            sa.select(syncs).where(syncs.c.project_id == project_id).order_by(syncs.c.id)
        )
        return [_sync(r, now) for r in rows]

    def find(self, cohort_id: int, integration_id: int) -> int | None:
        """The id of the sync of this cohort to this integration, if there is one."""
        found = self._connection.execute(
            sa.select(syncs.c.id).where(
                syncs.c.cohort_id == cohort_id, syncs.c.integration_id == integration_id
            )
        ).scalar_one_or_none()
        return int(found) if found is not None else None

    def count_active_dynamic(self, project_id: int, besides: tuple[int, int]) -> int:
        """Active dynamic syncs of the project other than ``besides`` (cohort, integration)."""
        cohort_id, integration_id = besides
        count = self._connection.execute(
            sa.select(sa.func.count()).where(
                syncs.c.project_id == project_id,
                syncs.c.mode == SyncMode.DYNAMIC,
                syncs.c.status == SyncStatus.ACTIVE,
                sa.not_(
                    sa.and_(
                        syncs.c.cohort_id == cohort_id, syncs.c.integration_id == integration_id
                    )
                ),
            )
        ).scalar_one()
        return int(count)

    def active_for_cohorts(self, cohort_ids: Collection[int]) -> list[ActiveExport]:
        """The syncs of these cohorts that are neither stopped nor finished, with their
        partner and integration name."""
        rows = self._connection.execute(
            sa.select(syncs.c.id, syncs.c.cohort_id, integrations.c.type, integrations.c.name)
            .join(integrations, integrations.c.id == syncs.c.integration_id)
            .where(syncs.c.cohort_id.in_(sorted(cohort_ids)), syncs.c.status == SyncStatus.ACTIVE)
            .order_by(syncs.c.id)
        )
        return [ActiveExport(r.id, r.cohort_id, r.type, r.name) for r in rows]

    def insert(self, values: dict[str, Any]) -> int:
        """A new sync row; its id."""
        new_id = self._connection.execute(
            syncs.insert().values(**values).returning(syncs.c.id)
        ).scalar_one()
        return int(new_id)

    def update(self, sync_id: int, values: dict[str, Any], *, if_active: bool = False) -> None:
        """Change a sync's columns other than its status (only while it is active, with
        ``if_active``: a sync stopped meanwhile keeps what the stop wrote)."""
        if "status" in values:
            raise ValueError("a sync's status changes through move()")
        where = [syncs.c.id == sync_id]
        if if_active:
            where.append(syncs.c.status == SyncStatus.ACTIVE)
        self._connection.execute(syncs.update().where(*where).values(**values))

    def move(
        self,
        sync_id: int,
        new: SyncStatus,
        values: dict[str, Any],
        *,
        only_from: tuple[SyncStatus, ...] | None = None,
    ) -> bool:
        """Move a sync to ``new`` (with ``values``) where the moves allow it from its status
        (narrowed to ``only_from``); whether it moved."""
        sources = allowed_from(SYNC_MOVES, new, only_from)
        return move_status(self._connection, syncs, sync_id, new, sources, values)

    def due(self, now: datetime) -> list[int]:
        """Syncs to run now: interrupted runs whose worker is gone, then syncs awaiting their
        turn whose time has come."""
        free = sa.or_(syncs.c.lease_until.is_(None), syncs.c.lease_until < now)
        unfinished = sa.exists().where(
            sync_runs.c.sync_id == syncs.c.id, sync_runs.c.status.in_(UNFINISHED)
        )
        scheduled = sa.and_(awaiting_turn(), syncs.c.next_run_at <= now)
        query = (
            sa.select(syncs.c.id)
            .where(free, sa.or_(unfinished, scheduled))
            .order_by(syncs.c.next_run_at, syncs.c.id)
        )
        return [int(row[0]) for row in self._connection.execute(query)]

    def stop_all(self, integration_id: int, now: datetime) -> None:
        """Stop every active sync to an integration (it was disconnected: R-INT-3)."""
        stopping = allowed_from(SYNC_MOVES, SyncStatus.STOPPED, (SyncStatus.ACTIVE,))
        self._connection.execute(
            syncs.update()
            .where(syncs.c.integration_id == integration_id, syncs.c.status.in_(stopping))
            .values(status=SyncStatus.STOPPED, next_run_at=None, updated_at=now)
        )

    # -- the partner's list -------------------------------------------------------------

    def named_list_user(self, integration_id: int, sync_id: int, name: str) -> int | None:
        """Another sync of the integration that sends a list of this name."""
        other = self._connection.execute(
            sa.select(syncs.c.id).where(
                syncs.c.integration_id == integration_id,
                syncs.c.id != sync_id,
                syncs.c.list_name == name,
            )
        ).first()
        return int(other[0]) if other is not None else None

    def older_sync_on_list(self, integration_id: int, sync_id: int, list_id: str) -> int | None:
        """An older sync of the integration that keeps the same partner list."""
        older = self._connection.execute(
            sa.select(syncs.c.id)
            .where(
                syncs.c.integration_id == integration_id,
                syncs.c.id < sync_id,
                syncs.c.list_id == list_id,
            )
            .limit(1)
        ).first()
        return int(older[0]) if older is not None else None

    def lists_owned_elsewhere(self, integration_id: int, sync_id: int) -> frozenset[str]:
        """Ids of the lists other syncs of the integration own."""
        rows = self._connection.execute(
            sa.select(syncs.c.list_id).where(
                syncs.c.integration_id == integration_id,
                syncs.c.id != sync_id,
                syncs.c.list_id.is_not(None),
            )
        )
        return frozenset(str(row[0]) for row in rows)

    def keep_list(self, sync_id: int, list_id: str, name: str, **values: Any) -> None:
        """Remember the sync's partner list (its id and name), with any other ``values``."""
        self._connection.execute(
            syncs.update()
            .where(syncs.c.id == sync_id)
            .values(list_id=list_id, list_name=name, **values)
        )

    def take_lease(self, sync_id: int, owner: str, now: datetime, until: datetime) -> bool:
        """Take the sync's lease until ``until`` if nobody holds an unexpired one (or ``owner``
        holds it already); whether it was taken. One conditional UPDATE: one worker wins."""
        taken = self._connection.execute(
            syncs.update()
            .where(
                syncs.c.id == sync_id,
                sa.or_(
                    syncs.c.lease_owner.is_(None),
                    syncs.c.lease_until.is_(None),
                    syncs.c.lease_until < now,
                    syncs.c.lease_owner == owner,
                ),
            )
            .values(lease_owner=owner, lease_until=until)
        ).rowcount
        return bool(taken)

    def renew_lease(self, sync_id: int, owner: str, until: datetime) -> bool:
        """Extend ``owner``'s lease to ``until``; False when ``owner`` no longer holds it."""
        renewed = self._connection.execute(
            syncs.update()
            .where(syncs.c.id == sync_id, syncs.c.lease_owner == owner)
            .values(lease_until=until)
        ).rowcount
        return bool(renewed)

    def release_lease(self, sync_id: int, owner: str) -> None:
        """Give the lease back (only if ``owner`` still holds it)."""
        self._connection.execute(
            syncs.update()
            .where(syncs.c.id == sync_id, syncs.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )

    def lease_until(self, sync_id: int) -> datetime | None:
        """When the sync's current lease ends (None: nobody holds it)."""
        until = self._connection.execute(
            sa.select(syncs.c.lease_until).where(syncs.c.id == sync_id)
        ).scalar()
        return as_utc(until) if until is not None else None

    def earliest_due_by_partner(self) -> list[tuple[str, datetime]]:
        """(partner, next run of its most overdue sync) over the syncs awaiting their turn."""
        earliest = sa.func.min(syncs.c.next_run_at).label("due")
        rows = self._connection.execute(
            sa.select(integrations.c.type, earliest)
            .join(integrations, integrations.c.id == syncs.c.integration_id)
            .where(awaiting_turn())
            .group_by(integrations.c.type)
            .order_by(integrations.c.type)
        ).all()
        return [(str(row.type), as_utc(row.due)) for row in rows]

    def partner_of(self, sync_id: int) -> str:
        """The partner (integration type) a sync exports to."""
        partner = self._connection.execute(
            sa.select(integrations.c.type)
            .join(syncs, syncs.c.integration_id == integrations.c.id)
            .where(syncs.c.id == sync_id)
        ).scalar_one()
        return str(partner)

    def rejections(
        self, sync_id: int, limit: int = 1000, keys: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Members the partner refused (of ``keys``, when given), waiting to be tried again on
        the next run."""
        query = sa.select(sync_rejections).where(sync_rejections.c.sync_id == sync_id)
        if keys is not None:
            query = query.where(sync_rejections.c.member_key.in_(keys))
        rows = self._connection.execute(query.order_by(sync_rejections.c.member_key).limit(limit))
        return [
            {"member": r.member_key, "op": r.op, "reason": r.reason, "run_id": r.run_id}
            for r in rows
        ]

    def acknowledged_key(self, sync_id: int, distinct_id: str) -> str | None:
        """The partner key the sync's list holds the user under, if it holds them."""
        key = self._connection.execute(
            sa.select(sync_members.c.member_key).where(
                sync_members.c.sync_id == sync_id, sync_members.c.distinct_id == distinct_id
            )
        ).scalar_one_or_none()
        return str(key) if key is not None else None

    def partner_held(self, sync_id: int, key: str) -> bool:
        """Whether the partner's list held ``key`` when it was last read back."""
        found = self._connection.execute(
            sa.select(sync_partner_keys.c.member_key).where(
                sync_partner_keys.c.sync_id == sync_id, sync_partner_keys.c.member_key == key
            )
        ).first()
        return found is not None

    # -- runs -----------------------------------------------------------------------------

    def get_run(self, run_id: int) -> SyncRun:
        """One run, or NotFound."""
        row = self._connection.execute(sa.select(sync_runs).where(sync_runs.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"run {run_id} does not exist")
        return _run(row)

    def latest_run(self, sync_id: int) -> SyncRun | None:
        """The newest run of a sync."""
        row = self._connection.execute(
            sa.select(sync_runs)
            .where(sync_runs.c.sync_id == sync_id)
            .order_by(sync_runs.c.id.desc())
            .limit(1)
        ).first()
        return _run(row) if row is not None else None

    def previous_run(self, sync_id: int, run_id: int) -> SyncRun | None:
        """The run of a sync that ended before ``run_id`` (blocked and superseded ones aside)."""
        row = self._connection.execute(
            sa.select(sync_runs)
            .where(
                sync_runs.c.sync_id == sync_id,
                sync_runs.c.id < run_id,
                sync_runs.c.status.not_in((RunStatus.BLOCKED, RunStatus.SUPERSEDED)),
            )
            .order_by(sync_runs.c.id.desc())
            .limit(1)
        ).first()
        return _run(row) if row is not None else None

    def runs(self, sync_id: int, limit: int = 50) -> list[SyncRun]:
        """A sync's runs, newest first."""
        rows = self._connection.execute(
            sa.select(sync_runs)
            .where(sync_runs.c.sync_id == sync_id)
            .order_by(sync_runs.c.id.desc())
            .limit(limit)
        )
        return [_run(r) for r in rows]

    def insert_run(self, values: dict[str, Any]) -> SyncRun:
        """A new run (in ``planning``)."""
        run_id = self._connection.execute(
            sync_runs.insert().values(status=RunStatus.PLANNING, **values).returning(sync_runs.c.id)
        ).scalar_one()
        return self.get_run(int(run_id))

    def update_run(self, run_id: int, **values: Any) -> None:
        """Change a run's columns other than its status."""
        if "status" in values:
            raise ValueError("a run's status changes through move_run()")
        self._connection.execute(
            sync_runs.update().where(sync_runs.c.id == run_id).values(**values)
        )

    def move_run(self, run_id: int, new: RunStatus, **values: Any) -> None:
        """Move a run to ``new`` (with ``values``); IllegalMove when its status does not allow
        it (a defect: the engine never asks for a move the table lacks)."""
        sources = allowed_from(RUN_MOVES, new)
        if not move_status(self._connection, sync_runs, run_id, new, sources, values):
            check_move(RUN_MOVES, self.get_run(run_id).status, new)

    def supersede_blocked(self, sync_id: int, now: datetime) -> None:
        """A blocked run waiting for a confirm is replaced (a new run, a re-export or a stop)."""
        waiting = allowed_from(RUN_MOVES, RunStatus.SUPERSEDED, (RunStatus.BLOCKED,))
        self._connection.execute(
            sync_runs.update()
            .where(sync_runs.c.sync_id == sync_id, sync_runs.c.status.in_(waiting))
            .values(status=RunStatus.SUPERSEDED, finished_at=now)
        )

    def started_at(self, run_id: int) -> datetime:
        """When a run started (the time its cohort and any read-back are as of)."""
        value = self._connection.execute(
            sa.select(sync_runs.c.started_at).where(sync_runs.c.id == run_id)
        ).scalar_one()
        return as_utc(value)
