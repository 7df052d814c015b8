"""The partner's list of a sync as it really is (R-SYN-11, R-X-2): found by the id we keep,
made anew when the partner lost it, and read back to find and repair drift.

- A sync keeps its list's partner id. A list renamed on the partner, or a cohort renamed here,
  keeps its list; two syncs never share one (a list another sync owns is never adopted by name).
- A list that is gone is made again, and what we believed it held is forgotten, so the run
  refills it whole.
- Where the partner can list members, a reconciling run stores what the partner holds, forgets
  the acknowledged members it does not hold (the diff sends them again) and plans the removal of
  members it holds but should not. Reads are rare (Iterable allows 5 a minute): daily, on
  demand, and after a failed run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from cohortsync.destinations.base import (
    CohortInfo,
    Destination,
    PartnerList,
    ReadableDestination,
)
from cohortsync.domain.errors import Conflict
from cohortsync.domain.sync_status import RunStatus, RunTrigger
from cohortsync.domain.syncs import Sync, SyncRun
from cohortsync.storage.database import read_transaction, write_transaction
from cohortsync.storage.ledger_store import LedgerStore
from cohortsync.storage.sync_store import SyncStore
from cohortsync.sync.diff import REMOVE, Change

READ_CHUNK = 20_000
MAX_KEY = 255  # the longest member key stored
# A planned removal of a member the partner holds but nobody here stands for: no distinct_id.
STRANGER = ""


@dataclass(frozen=True)
class ListFound:
    """The list a run sends to, and whether it had to be made again."""

    target: PartnerList
    recreated: bool


def refuse_shared_name(engine: Engine, sync: Sync, name: str) -> None:
    """A partner whose list is addressed by its name (a snapshot) cannot tell two lists of one
    name apart: a second sync of the integration may not use a name another sync uses."""
    with read_transaction(engine) as connection:
        other = SyncStore(connection).named_list_user(sync.integration_id, sync.id, name)
    if other is not None:
        raise Conflict(
            f"sync {other} already sends a list named {name!r} to this integration, and the "
            "partner tells lists apart by name; rename the cohort, or put {cohort_id} in the "
            "integration's list name template"
        )


def _older_sync_on_the_same_list(engine: Engine, sync: Sync) -> int | None:
    """An older sync of the integration that keeps the same list (two cohorts of one name were
    given one Xtremepush list, found by title, before lists were kept by id): the older keeps
    it, and this one gets a list of its own, filled whole."""
    assert sync.list_id is not None
    with read_transaction(engine) as connection:
        return SyncStore(connection).older_sync_on_list(sync.integration_id, sync.id, sync.list_id)


def _take_off_what_only_this_sync_put(
    engine: Engine, sync: Sync, older: int, destination: Destination, cohort: CohortInfo
) -> None:
    """Before leaving a shared list, take off it the members this sync put there that the
    older sync does not hold."""
    assert sync.list_id is not None
    with read_transaction(engine) as connection:
        strays = LedgerStore(connection).only_here(sync.id, older)
    shared = PartnerList(sync.list_id, sync.list_name or "", cohort)
    size = destination.capabilities.max_batch
    for start in range(0, len(strays), size):
        batch = [Change(REMOVE, *row).member() for row in strays[start : start + size]]
        destination.remove_members(shared, batch)


def owned_elsewhere(engine: Engine, sync: Sync) -> frozenset[str]:
    """Ids of the lists other syncs of the same integration own."""
    with read_transaction(engine) as connection:
        return SyncStore(connection).lists_owned_elsewhere(sync.integration_id, sync.id)


def find_or_make(
    engine: Engine,
    sync: Sync,
    destination: Destination,
    cohort: CohortInfo,
    name: str,
    now: datetime,
) -> ListFound:
    """The sync's list: by its kept id, else (never made, or gone) found by ``name`` among
    lists no other sync owns, or made. A list made again resets the acknowledged state; a list
    just made is known to be empty, as good as read back."""
    older = _older_sync_on_the_same_list(engine, sync) if sync.list_id else None
    if older is not None:
        _take_off_what_only_this_sync_put(engine, sync, older, destination, cohort)
    elif sync.list_id:
        found = destination.find_list(sync.list_id, cohort)
        if found is not None and sync.list_name and destination.capabilities.snapshot_membership:
            # A snapshot is addressed by the list's name: the one we keep, whatever the cohort
            # is called now.
            found = replace(found, name=sync.list_name)
        if found is not None:
            keep(engine, sync, found)
            return ListFound(found, recreated=False)
    if destination.capabilities.snapshot_membership:
        refuse_shared_name(engine, sync, name)
    target = destination.ensure_list(name, cohort, owned_elsewhere(engine, sync))
    recreated = sync.list_id is not None
    with write_transaction(engine) as connection:
        if recreated:
            LedgerStore(connection).forget_all(sync.id)
        # A list just made is known to be empty; one found by name is known to nobody yet.
        reconciled_at = now if target.created else None
        SyncStore(connection).keep_list(
            sync.id, target.id, target.name, reconciled_at=reconciled_at
        )
    return ListFound(target, recreated)


def keep(engine: Engine, sync: Sync, target: PartnerList) -> None:
    """Remember the list's id and name as the partner gives them now."""
    if target.id == sync.list_id and target.name == sync.list_name:
        return
    with write_transaction(engine) as connection:
        SyncStore(connection).keep_list(sync.id, target.id, target.name)


def drift_suspected(previous: SyncRun | None) -> bool:
    """Whether the list may have drifted from what we believe: the last run failed with changes
    to send, some of which may have reached the partner unacknowledged."""
    if previous is None or previous.status != RunStatus.FAILED:
        return False
    planned = previous.counts
    return planned.planned_add + planned.planned_update + planned.planned_remove > 0


def reconcile_due(
    sync: Sync,
    destination: Destination,
    run: SyncRun,
    previous: SyncRun | None,
    now: datetime,
    every: timedelta,
) -> bool:
    """Whether this run reads the list back: the partner allows it, and it was asked for, or
    never done (on a list this sync did not make), or last done ``every`` ago, or drift is
    suspected. ``sync`` is as it was after its list was found."""
    if not destination.capabilities.reads_members or not isinstance(
        destination, ReadableDestination
    ):
        return False
    return (
        run.trigger == RunTrigger.RECONCILE
        or sync.reconciled_at is None
        or now - sync.reconciled_at >= every
        or drift_suspected(previous)
    )


def read_back(
    engine: Engine,
    sync_id: int,
    destination: ReadableDestination,
    target: PartnerList,
    now: datetime,
) -> int:
    """Store what the partner's list holds and forget acknowledged members it does not hold
    (the diff then sends them again); returns how many were missing. A key longer than any we
    send cannot be one of ours and is left out."""
    with write_transaction(engine) as connection:
        LedgerStore(connection).forget_partner_keys(sync_id)
    keys = (key for key in destination.read_members(target) if len(key) <= MAX_KEY)
    for chunk in _chunks(keys):
        with write_transaction(engine) as connection:
            LedgerStore(connection).add_partner_keys(sync_id, chunk)
    with write_transaction(engine) as connection:
        missing = LedgerStore(connection).forget_unheld(sync_id)
        SyncStore(connection).update(sync_id, {"read_back_at": now})
    return missing


def plan_extras(engine: Engine, sync_id: int, run_id: int, sink: Callable[[Change], None]) -> int:
    """Plan the removal of members the partner holds that are neither acknowledged nor about to
    be added (strangers put on by hand, or left by a lost removal); returns how many."""
    extra = 0
    with read_transaction(engine) as connection:
        for key in LedgerStore(connection).strangers(sync_id, run_id):
            sink(Change(REMOVE, STRANGER, key, "{}"))
            extra += 1
    return extra


def _chunks(keys: Iterator[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    for key in keys:
        chunk.append(key)
        if len(chunk) >= READ_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
