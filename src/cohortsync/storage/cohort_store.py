"""Stored cohorts: their rows, their listed members, and the SQL that selects who is in one."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import Select

from cohortsync.clock import as_utc
from cohortsync.domain.cohorts import (
    Cohort,
    CohortKind,
    CohortReference,
    Condition,
    parse_definition,
)
from cohortsync.domain.errors import NotFound
from cohortsync.query.compiler import CohortCompiler
from cohortsync.storage.database import code_point_order
from cohortsync.storage.tables import cohort_members, cohorts
from cohortsync.warehouse import identities, profile_keys
from cohortsync.warehouse.sql import bulk_insert_ignoring


def _cohort(row: Any) -> Cohort:
    return Cohort(
        id=row.id,
        project_id=row.project_id,
        name=row.name,
        description=row.description,
        kind=CohortKind(row.kind),
        definition=row.definition,
        created_by=row.created_by,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


class CohortStore:
    """The cohorts of the database, read and written in the caller's transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def get(self, project_id: int, cohort_id: int) -> Cohort:
        """One cohort of the project, or NotFound."""
        row = self._connection.execute(
            sa.select(cohorts).where(cohorts.c.project_id == project_id, cohorts.c.id == cohort_id)
        ).first()
        if row is None:
            raise NotFound(f"cohort {cohort_id} does not exist in project {project_id}")
        return _cohort(row)

    def list(self, project_id: int) -> list[Cohort]:
        """The project's cohorts, oldest first."""
        rows = self._connection.execute(
            sa.select(cohorts).where(cohorts.c.project_id == project_id).order_by(cohorts.c.id)
        )
        return [_cohort(r) for r in rows]

    def versions(self, project_id: int) -> builtins.list[tuple[int, Any]]:
        """The project's cohorts as ``(id, definition)``, oldest first: what a change checked
        outside its write transaction compares with what it read."""
        rows = self._connection.execute(
            sa.select(cohorts.c.id, cohorts.c.definition)
            .where(cohorts.c.project_id == project_id)
            .order_by(cohorts.c.id)
        )
        return [(row.id, row.definition) for row in rows]

    def count_cohorts(self, project_id: int) -> int:
        """How many cohorts the project holds."""
        counted = sa.select(sa.func.count()).where(cohorts.c.project_id == project_id)
        return int(self._connection.execute(counted).scalar_one())

    def insert(
        self,
        project_id: int,
        name: str,
        description: str,
        kind: CohortKind,
        definition: Any,
        created_by: int | None,
        now: datetime,
    ) -> int:
        """Store a new cohort made at ``now``; its id."""
        cohort_id = self._connection.execute(
            cohorts.insert()
            .values(
                project_id=project_id,
                name=name,
                description=description,
                kind=kind.value,
                definition=definition,
                created_by=created_by,
                created_at=now,
                updated_at=now,
            )
            .returning(cohorts.c.id)
        ).scalar_one()
        return int(cohort_id)

    def update(self, cohort_id: int, values: dict[str, Any]) -> None:
        """Change the given columns of a cohort."""
        self._connection.execute(cohorts.update().where(cohorts.c.id == cohort_id).values(**values))

    def delete(self, cohort_id: int) -> None:
        """Forget a cohort and its listed members."""
        self._connection.execute(
            cohort_members.delete().where(cohort_members.c.cohort_id == cohort_id)
        )
        self._connection.execute(cohorts.delete().where(cohorts.c.id == cohort_id))

    def add_members(self, cohort_id: int, distinct_ids: Iterable[str]) -> None:
        """List users as members of a static cohort (straight through the DB-API: a list of
        100,000 takes a moment of the write lock, not seconds)."""
        rows = [(cohort_id, m) for m in distinct_ids]
        bulk_insert_ignoring(self._connection, "cohort_members", ("cohort_id", "distinct_id"), rows)

    def canonical_ids(self, project_id: int, distinct_ids: Sequence[str]) -> set[str]:
        """The users any of ``distinct_ids`` name (each id mapped to its canonical id)."""
        return set(identities.resolve(self._connection, project_id, list(distinct_ids)).values())

    def users_with_email(self, project_id: int, emails: Sequence[str]) -> set[str]:
        """The users whose profile's ``$email`` is one of ``emails``, in any case (looked up
        through the folded-email index, in chunks)."""
        return profile_keys.users_with_key(self._connection, project_id, "$email", emails)

    def _compiler(self, project_id: int, now_ms: int) -> CohortCompiler:
        """A compiler that resolves ``in_cohort`` references to the project's stored cohorts."""

        def resolve(reference: int) -> Condition | None:
            target = self.get(project_id, reference)
            if target.kind is CohortKind.DYNAMIC:
                return parse_definition(target.definition)
            return None

        return CohortCompiler(self._connection.dialect.name, project_id, now_ms, resolve)

    def definition_query(
        self, project_id: int, condition: Condition, now_ms: int, with_properties: bool = True
    ) -> Select[Any]:
        """SELECT distinct_id (and profile properties) of the users ``condition`` holds for."""
        return self._compiler(project_id, now_ms).members(condition, with_properties)

    def members_query(
        self, project_id: int, cohort_id: int, now_ms: int, with_properties: bool = True
    ) -> Select[Any]:
        """SELECT distinct_id (and profile properties) of the cohort's members as of ``now_ms``."""
        cohort = self.get(project_id, cohort_id)
        condition = (
            CohortReference(cohort.id)
            if cohort.kind is CohortKind.STATIC
            else parse_definition(cohort.definition)
        )
        return self.definition_query(project_id, condition, now_ms, with_properties)

    def count(self, query: Select[Any]) -> int:
        """How many rows a members query selects."""
        counted = sa.select(sa.func.count()).select_from(query.subquery())
        return int(self._connection.execute(counted).scalar_one())

    def count_members(self, project_id: int, cohort_id: int, now_ms: int) -> int:
        """How many users are in the cohort as of ``now_ms``."""
        return self.count(self.members_query(project_id, cohort_id, now_ms, False))

    def member_rows(
        self, project_id: int, cohort_id: int, now_ms: int, after: str | None, limit: int
    ) -> builtins.list[Row[Any]]:
        """Up to ``limit`` members (distinct_id, properties) after ``after``, in id order."""
        query = self.members_query(project_id, cohort_id, now_ms).subquery()
        page = sa.select(query).order_by(query.c.distinct_id).limit(limit)
        if after:
            page = page.where(query.c.distinct_id > after)
        return list(self._connection.execute(page).all())

    def stream_members(
        self, project_id: int, cohort_id: int, as_of_ms: int
    ) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """The cohort's members with their profiles as of ``as_of_ms``, streamed in code point
        order of distinct_id (the order the sync's ledger is kept in)."""
        query = self.members_query(project_id, cohort_id, as_of_ms).subquery()
        ordered = sa.select(query).order_by(code_point_order(self._connection, query.c.distinct_id))
        options = self._connection.execution_options(stream_results=True, yield_per=2_000)
        for row in options.execute(ordered):
            yield row.distinct_id, row.properties or {}
