"""A project's cohorts as read before a change is written. The checks that need every cohort
(references exist, no cycle, inlined definitions within the bounds of one SQL statement, room
for one more cohort) parse definitions, which takes a while with many cohorts: they run on this
snapshot outside the write transaction, and the write only confirms that nothing changed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine

from cohortsync.domain.cohort_guard import ActiveExport, feeding
from cohortsync.domain.cohort_size import check_inlined
from cohortsync.domain.cohorts import (
    Cohort,
    CohortKind,
    Condition,
    DefinitionError,
    parse_definition,
    reference_paths,
)
from cohortsync.domain.errors import Conflict, NotFound
from cohortsync.storage.cohort_store import CohortStore
from cohortsync.storage.database import read_transaction, write_transaction
from cohortsync.storage.sync_store import SyncStore

MAX_COHORTS_PER_PROJECT = 1000  # the default of the setting max_cohorts_per_project
CHECK_ATTEMPTS = 3  # reads of the snapshot before a change gives up on concurrent edits
CHANGED = "the project's cohorts kept changing while this change was checked; send it again"
Written = TypeVar("Written")


def too_many(limit: int) -> Conflict:
    """The refusal of a cohort beyond ``limit`` in one project."""
    return Conflict(
        f"a project holds at most {limit:,} cohorts; delete cohorts you no longer use "
        "(or ask the operator to raise COHORTSYNC_MAX_COHORTS_PER_PROJECT)"
    )


@dataclass(frozen=True)
class CohortSnapshot:
    """The project's cohorts by id, as read (oldest first)."""

    project_id: int
    cohorts: dict[int, Cohort]

    def versions(self) -> list[tuple[int, Any]]:
        """What a write compares with the stored cohorts: ids and definitions."""
        return [(c.id, c.definition) for c in self.cohorts.values()]

    def get(self, cohort_id: int) -> Cohort:
        """One cohort of the snapshot, or NotFound."""
        found = self.cohorts.get(cohort_id)
        if found is None:
            raise NotFound(f"cohort {cohort_id} does not exist in project {self.project_id}")
        return found

    def check_room(self, limit: int) -> None:
        """Conflict when the project already holds ``limit`` cohorts."""
        if len(self.cohorts) >= limit:
            raise too_many(limit)

    def exports(self, connection: Connection, cohort_id: int) -> list[ActiveExport]:
        """The active exports reading the cohort, directly or through ``in_cohort``."""
        fed = feeding(self.cohorts.values(), cohort_id)
        return SyncStore(connection).active_for_cohorts(fed)

    def check_references(self, raw: Any, own_id: int | None) -> None:
        """Every referenced cohort exists in the project, following references never comes
        back to ``own_id`` (a cycle), and inlining them keeps this definition, and every one
        that refers to ``own_id``, within the bounds of one SQL statement."""
        for path, cohort_id in reference_paths(raw):
            seen: set[int] = set()
            pending = [cohort_id]
            while pending:
                current = pending.pop()
                if current == own_id:
                    raise DefinitionError(
                        path, f"cohort {cohort_id} refers back to this cohort (a cycle)"
                    )
                if current in seen:
                    continue
                seen.add(current)
                found = self.cohorts.get(current)
                if found is None:
                    raise DefinitionError(path, f"cohort {current} does not exist in this project")
                pending.extend(i for _, i in reference_paths(found.definition))
        self._check_inlined(raw, own_id)

    def _check_inlined(self, raw: Any, own_id: int | None) -> None:
        stored = self.cohorts

        def resolve(cohort_id: int) -> Condition | None:
            if cohort_id == own_id:
                return parse_definition(raw)
            found = stored.get(cohort_id)
            if found is None or found.kind is CohortKind.STATIC or found.problem is not None:
                return None
            return parse_definition(found.definition)

        check_inlined(parse_definition(raw), resolve, "this definition")
        if own_id is None:
            return
        for referrer in sorted(feeding(stored.values(), own_id) - {own_id}):
            other = stored[referrer]
            if other.problem is None:
                whose = f"cohort {referrer} ({other.name!r}), which refers to this one,"
                check_inlined(parse_definition(other.definition), resolve, whose)


def snapshot_in(connection: Connection, project_id: int) -> CohortSnapshot:
    """The project's cohorts as the caller's transaction sees them."""
    listed = CohortStore(connection).list(project_id)
    return CohortSnapshot(project_id, {c.id: c for c in listed})


def read_snapshot(engine: Engine, project_id: int) -> CohortSnapshot:
    """The project's cohorts now, in a read transaction of their own."""
    with read_transaction(engine) as connection:
        return snapshot_in(connection, project_id)


def write_checked(
    engine: Engine,
    project_id: int,
    check: Callable[[CohortSnapshot], None],
    write: Callable[[Connection, CohortSnapshot], Written],
) -> Written:
    """``check`` a fresh snapshot outside any write, then ``write`` in a short transaction
    that first confirms the project's cohorts are still those checked (else reads again, at
    most :data:`CHECK_ATTEMPTS` times, then Conflict)."""
    for _ in range(CHECK_ATTEMPTS):
        snapshot = read_snapshot(engine, project_id)
        check(snapshot)
        with write_transaction(engine) as connection:
            if CohortStore(connection).versions(project_id) == snapshot.versions():
                return write(connection, snapshot)
    raise Conflict(CHANGED)
