"""Cohorts: create, change and delete them; count and page through their members (R-COH-1..4)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from cohortsync.domain.cohorts import (
    CohortReference,
    Condition,
    DefinitionError,
    PropertyCondition,
    parse_definition,
)
from cohortsync.domain.errors import BatchError, Conflict, NotFound
from cohortsync.query.compiler import CohortCompiler
from cohortsync.storage.tables import cohort_members, cohorts
from cohortsync.warehouse import identities

DYNAMIC = "dynamic"
STATIC = "static"
MAX_PAGE = 1000


@dataclass(frozen=True)
class Cohort:
    """A stored cohort."""

    id: int
    project_id: int
    name: str
    description: str
    kind: str
    definition: Any
    created_by: int | None
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The API representation."""
        return {
            "id": self.id,
            "project_id": self.project_id,
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "definition": self.definition,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class MemberPage:
    """One page of a cohort's members, in distinct_id order."""

    count: int
    members: list[dict[str, Any]]
    next_cursor: str | None


def _now() -> datetime:
    return datetime.now(UTC)


def _row(row: Any) -> Cohort:
    created, updated = row.created_at, row.updated_at
    return Cohort(
        id=row.id,
        project_id=row.project_id,
        name=row.name,
        description=row.description,
        kind=row.kind,
        definition=row.definition,
        created_by=row.created_by,
        created_at=created if created.tzinfo else created.replace(tzinfo=UTC),
        updated_at=updated if updated.tzinfo else updated.replace(tzinfo=UTC),
    )


def get_cohort(connection: Connection, project_id: int, cohort_id: int) -> Cohort:
    """One cohort of the project, or NotFound."""
    row = connection.execute(
        sa.select(cohorts).where(cohorts.c.project_id == project_id, cohorts.c.id == cohort_id)
    ).first()
    if row is None:
        raise NotFound(f"cohort {cohort_id} does not exist in project {project_id}")
    return _row(row)


def list_cohorts(connection: Connection, project_id: int) -> list[Cohort]:
    """The project's cohorts, oldest first."""
    rows = connection.execute(
        sa.select(cohorts).where(cohorts.c.project_id == project_id).order_by(cohorts.c.id)
    )
    return [_row(r) for r in rows]


def _reference_paths(raw: Any, path: str = "$") -> Iterator[tuple[str, int]]:
    """(JSON path, cohort id) of every ``in_cohort`` in a raw definition."""
    if isinstance(raw, dict):
        if isinstance(raw.get("in_cohort"), int):
            yield f"{path}.in_cohort", raw["in_cohort"]
        for key, value in raw.items():
            yield from _reference_paths(value, f"{path}.{key}")
    elif isinstance(raw, list):
        for index, value in enumerate(raw):
            yield from _reference_paths(value, f"{path}[{index}]")


def _check_references(
    connection: Connection, project_id: int, raw: Any, own_id: int | None
) -> None:
    """Every referenced cohort exists in the project, and following references never comes back
    to ``own_id`` (a cycle)."""
    for path, cohort_id in _reference_paths(raw):
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
            try:
                found = get_cohort(connection, project_id, current)
            except NotFound:
                raise DefinitionError(
                    path, f"cohort {current} does not exist in this project"
                ) from None
            pending.extend(i for _, i in _reference_paths(found.definition))


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 255:
        raise BatchError("'name' must be 1-255 characters")
    return name


def _insert(
    connection: Connection,
    project_id: int,
    name: str,
    description: str,
    kind: str,
    definition: Any,
    created_by: int | None,
) -> int:
    now = _now()
    cohort_id = connection.execute(
        cohorts.insert()
        .values(
            project_id=project_id,
            name=_check_name(name),
            description=description,
            kind=kind,
            definition=definition,
            created_by=created_by,
            created_at=now,
            updated_at=now,
        )
        .returning(cohorts.c.id)
    ).scalar_one()
    return int(cohort_id)


def create_cohort(
    connection: Connection,
    project_id: int,
    name: str,
    definition: Any,
    description: str = "",
    created_by: int | None = None,
) -> Cohort:
    """A dynamic cohort; the definition is validated, references checked."""
    parse_definition(definition)
    _check_references(connection, project_id, definition, None)
    cohort_id = _insert(connection, project_id, name, description, DYNAMIC, definition, created_by)
    return get_cohort(connection, project_id, cohort_id)


def members_from_csv(text: str) -> tuple[list[str], list[str]]:
    """``(distinct_ids, emails)`` listed by a CSV (a static cohort's upload, through the API or
    the web UI): its ``distinct_id`` (or ``$distinct_id``) column, else its ``email`` (or
    ``$email``) column, per row, whatever the headers' case; empty cells are left out. A CSV
    with neither column is a BatchError saying so."""
    reader = csv.DictReader(io.StringIO(text))
    columns = {c.strip().lower(): c for c in reader.fieldnames or []}
    id_column = columns.get("distinct_id") or columns.get("$distinct_id")
    email_column = columns.get("email") or columns.get("$email")
    if id_column is None and email_column is None:
        raise BatchError("the CSV needs a 'distinct_id' or an 'email' column")
    ids, emails = [], []
    for row in reader:
        if id_column and row.get(id_column):
            ids.append(row[id_column].strip())
        elif email_column and row.get(email_column):
            emails.append(row[email_column].strip())
    return ids, emails


def create_static_cohort(
    connection: Connection,
    project_id: int,
    name: str,
    distinct_ids: Sequence[str] = (),
    emails: Sequence[str] = (),
    description: str = "",
    created_by: int | None = None,
    now_ms: int = 0,
) -> Cohort:
    """A cohort of fixed users, named by distinct_id (any id of the user) or by ``$email``."""
    if not distinct_ids and not emails:
        raise BatchError("a static cohort needs 'distinct_ids' or 'emails'")
    members = set(
        identities.resolve(connection, project_id, [str(i) for i in distinct_ids]).values()
    )
    if emails:
        compiler = CohortCompiler(connection.dialect.name, project_id, now_ms, lambda _: None)
        by_email = compiler.members(PropertyCondition("$email", "in", tuple(emails)))
        members.update(r.distinct_id for r in connection.execute(by_email))
    cohort_id = _insert(connection, project_id, name, description, STATIC, None, created_by)
    if members:
        connection.execute(
            cohort_members.insert(),
            [{"cohort_id": cohort_id, "distinct_id": m} for m in sorted(members)],
        )
    return get_cohort(connection, project_id, cohort_id)


def update_cohort(
    connection: Connection,
    project_id: int,
    cohort_id: int,
    *,
    name: str | None = None,
    description: str | None = None,
    definition: Any = None,
) -> Cohort:
    """Rename, describe or redefine a cohort (static cohorts keep their members)."""
    current = get_cohort(connection, project_id, cohort_id)
    values: dict[str, Any] = {"updated_at": _now()}
    if name is not None:
        values["name"] = _check_name(name)
    if description is not None:
        values["description"] = description
    if definition is not None:
        if current.kind == STATIC:
            raise Conflict("a static cohort has no definition; upload a new list instead")
        parse_definition(definition)
        _check_references(connection, project_id, definition, cohort_id)
        values["definition"] = definition
    connection.execute(cohorts.update().where(cohorts.c.id == cohort_id).values(**values))
    return get_cohort(connection, project_id, cohort_id)


def delete_cohort(connection: Connection, project_id: int, cohort_id: int) -> None:
    """Delete a cohort no other cohort refers to."""
    get_cohort(connection, project_id, cohort_id)
    for other in list_cohorts(connection, project_id):
        if any(i == cohort_id for _, i in _reference_paths(other.definition)):
            raise Conflict(
                f"cohort {other.id} ({other.name!r}) refers to this cohort; change it first"
            )
    connection.execute(cohort_members.delete().where(cohort_members.c.cohort_id == cohort_id))
    connection.execute(cohorts.delete().where(cohorts.c.id == cohort_id))


def _compiler(connection: Connection, project_id: int, now_ms: int) -> CohortCompiler:
    """A compiler that resolves ``in_cohort`` references to the project's stored cohorts."""

    def resolve(reference: int) -> Condition | None:
        target = get_cohort(connection, project_id, reference)
        return parse_definition(target.definition) if target.kind == DYNAMIC else None

    return CohortCompiler(connection.dialect.name, project_id, now_ms, resolve)


def members_query(
    connection: Connection,
    project_id: int,
    cohort_id: int,
    now_ms: int,
    with_properties: bool = True,
) -> Select[Any]:
    """SELECT distinct_id (and profile properties) of the cohort's members as of ``now_ms``."""
    cohort = get_cohort(connection, project_id, cohort_id)
    condition = (
        CohortReference(cohort.id) if cohort.kind == STATIC else parse_definition(cohort.definition)
    )
    return _compiler(connection, project_id, now_ms).members(condition, with_properties)


def count_definition(connection: Connection, project_id: int, definition: Any, now_ms: int) -> int:
    """How many users a definition not yet saved would hold now (a builder's live count);
    validated and reference-checked like one being saved."""
    condition = parse_definition(definition)
    _check_references(connection, project_id, definition, None)
    query = _compiler(connection, project_id, now_ms).members(condition, False).subquery()
    return int(connection.execute(sa.select(sa.func.count()).select_from(query)).scalar_one())


def count_members(connection: Connection, project_id: int, cohort_id: int, now_ms: int) -> int:
    """How many users qualify now."""
    query = members_query(connection, project_id, cohort_id, now_ms, False).subquery()
    return int(connection.execute(sa.select(sa.func.count()).select_from(query)).scalar_one())


def member_page(
    connection: Connection,
    project_id: int,
    cohort_id: int,
    now_ms: int,
    *,
    limit: int = 100,
    cursor: str | None = None,
    properties: Sequence[str] = (),
) -> MemberPage:
    """A page of members after ``cursor`` (a distinct_id), with the chosen profile properties."""
    if not 1 <= limit <= MAX_PAGE:
        raise BatchError(f"'limit' must be between 1 and {MAX_PAGE}")
    total = count_members(connection, project_id, cohort_id, now_ms)
    query = members_query(connection, project_id, cohort_id, now_ms).subquery()
    page = sa.select(query).order_by(query.c.distinct_id).limit(limit + 1)
    if cursor:
        page = page.where(query.c.distinct_id > cursor)
    rows = connection.execute(page).all()
    members = []
    for row in rows[:limit]:
        profile = dict(row.properties or {})
        chosen = {k: profile[k] for k in properties if k in profile} if properties else profile
        members.append(
            {"distinct_id": row.distinct_id, "properties": chosen, "identified": bool(profile)}
        )
    next_cursor = rows[limit - 1].distinct_id if len(rows) > limit else None
    return MemberPage(total, members, next_cursor)
