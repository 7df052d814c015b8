"""Cohorts: create, change and delete them; count and page through their members (R-COH-1..4)."""

from __future__ import annotations

import builtins
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Engine

from cohortsync.clock import Clock, now_ms
from cohortsync.domain.cohort_guard import (
    OPERATOR,
    ActiveExport,
    CohortEditor,
    change_summary,
    check_change,
    check_delete,
    fed_by,
)
from cohortsync.domain.cohorts import (
    Cohort,
    CohortKind,
    parse_definition,
    reference_paths,
)
from cohortsync.domain.definition_bounds import checked_description, checked_name
from cohortsync.domain.errors import BatchError, Conflict, PayloadTooLarge
from cohortsync.services.cohort_snapshot import (
    MAX_COHORTS_PER_PROJECT,
    CohortSnapshot,
    read_snapshot,
    snapshot_in,
    too_many,
    write_checked,
)
from cohortsync.storage.audit_store import AuditStore
from cohortsync.storage.cohort_store import CohortStore
from cohortsync.storage.database import read_transaction, write_transaction
from cohortsync.storage.sync_store import SyncStore

MAX_PAGE = 1000
MAX_ID_CHARS = 255  # a distinct_id, as stored
MAX_EMAIL_CHARS = 320
MAX_STATIC_ENTRIES = 100_000  # ids and emails of one static cohort
MAX_STATIC_BYTES = 16 * 1024 * 1024  # the body of one upload (JSON or CSV)
STATIC_TOO_LARGE = (
    f"a static cohort is uploaded as at most {MAX_STATIC_BYTES // (1024 * 1024)} MiB and "
    f"{MAX_STATIC_ENTRIES:,} ids or emails; split the list into several cohorts"
)


@dataclass(frozen=True)
class MemberPage:
    """One page of a cohort's members, in distinct_id order."""

    count: int
    members: list[dict[str, Any]]
    next_cursor: str | None


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


def _entries(values: Sequence[str], field: str, limit: int) -> list[str]:
    """The non-blank entries of a static cohort's list, each at most ``limit`` characters."""
    kept = []
    for index, given in enumerate(values):
        value = str(given).strip()
        if len(value) > limit or "\x00" in value:
            raise BatchError(
                f"{field}[{index}] is over {limit} characters or holds a NUL; correct it"
            )
        if value:
            kept.append(value)
    return kept


class CohortService:
    """Cohorts of every project, each operation in its own transaction; every change is
    audited in the transaction that makes it."""

    def __init__(
        self, engine: Engine, clock: Clock, *, max_cohorts: int = MAX_COHORTS_PER_PROJECT
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._max_cohorts = max_cohorts

    def get(self, project_id: int, cohort_id: int) -> Cohort:
        """One cohort of the project, or NotFound."""
        with read_transaction(self._engine) as connection:
            return CohortStore(connection).get(project_id, cohort_id)

    def list(self, project_id: int) -> list[Cohort]:
        """The project's cohorts, oldest first."""
        with read_transaction(self._engine) as connection:
            return CohortStore(connection).list(project_id)

    def names(self, project_id: int) -> dict[int, str]:
        """The name of each of the project's cohorts, by id."""
        return {c.id: c.name for c in self.list(project_id)}

    def guarded(self, project_id: int) -> set[int]:
        """The ids of the cohorts that feed an active export (only admins change them)."""
        with read_transaction(self._engine) as connection:
            found = CohortStore(connection).list(project_id)
            exports = SyncStore(connection).active_for_cohorts([c.id for c in found])
        return fed_by(found, {e.cohort_id for e in exports})

    def exports_fed_by(self, project_id: int, cohort_id: int) -> builtins.list[ActiveExport]:
        """The active exports whose members depend on the cohort."""
        with read_transaction(self._engine) as connection:
            return snapshot_in(connection, project_id).exports(connection, cohort_id)

    def _audit(
        self,
        connection: Connection,
        project_id: int,
        editor: CohortEditor,
        action: str,
        cohort_id: int,
        detail: dict[str, Any],
    ) -> None:
        AuditStore(connection).record(
            project_id=project_id,
            user_id=editor.user_id,
            actor=editor.actor,
            action=action,
            target=f"cohort:{cohort_id}",
            detail=detail,
            at=self._clock.now(),
        )

    def create(
        self,
        project_id: int,
        name: str,
        definition: Any,
        description: str = "",
        created_by: int | None = None,
    ) -> Cohort:
        """A dynamic cohort; the definition is validated, references checked
        (``created_by`` None: made by the operator at the command line)."""
        parse_definition(definition)
        name, description = checked_name(name), checked_description(description)

        def check(snapshot: CohortSnapshot) -> None:
            snapshot.check_room(self._max_cohorts)
            snapshot.check_references(definition, None)

        def write(connection: Connection, _: CohortSnapshot) -> Cohort:
            store = CohortStore(connection)
            cohort_id = store.insert(
                project_id,
                name,
                description,
                CohortKind.DYNAMIC,
                definition,
                created_by,
                self._clock.now(),
            )
            editor = CohortEditor(created_by, is_admin=created_by is None)
            detail = {"name": name, "kind": CohortKind.DYNAMIC.value}
            self._audit(connection, project_id, editor, "cohort.create", cohort_id, detail)
            return store.get(project_id, cohort_id)

        return write_checked(self._engine, project_id, check, write)

    def create_static(
        self,
        project_id: int,
        name: str,
        distinct_ids: Sequence[str] = (),
        emails: Sequence[str] = (),
        description: str = "",
        created_by: int | None = None,
    ) -> Cohort:
        """A cohort of fixed users, named by distinct_id (any id of the user) or by ``$email``
        (in any case). Who they are is read first; the write that stores them is short."""
        if not distinct_ids and not emails:
            raise BatchError("a static cohort needs 'distinct_ids' or 'emails'")
        if len(distinct_ids) + len(emails) > MAX_STATIC_ENTRIES:
            raise PayloadTooLarge(STATIC_TOO_LARGE)
        name, description = checked_name(name), checked_description(description)
        ids = _entries(distinct_ids, "distinct_ids", MAX_ID_CHARS)
        addresses = _entries(emails, "emails", MAX_EMAIL_CHARS)
        with read_transaction(self._engine) as connection:
            store = CohortStore(connection)
            members = store.canonical_ids(project_id, ids)
            if addresses:
                members |= store.users_with_email(project_id, addresses)
        with write_transaction(self._engine) as connection:
            store = CohortStore(connection)
            if store.count_cohorts(project_id) >= self._max_cohorts:
                raise too_many(self._max_cohorts)
            cohort_id = store.insert(
                project_id,
                name,
                description,
                CohortKind.STATIC,
                None,
                created_by,
                self._clock.now(),
            )
            store.add_members(cohort_id, sorted(members))
            editor = CohortEditor(created_by, is_admin=created_by is None)
            detail = {"name": name, "kind": CohortKind.STATIC.value, "members": len(members)}
            self._audit(connection, project_id, editor, "cohort.create", cohort_id, detail)
            return store.get(project_id, cohort_id)

    def update(
        self,
        project_id: int,
        cohort_id: int,
        *,
        name: str | None = None,
        description: str | None = None,
        definition: Any = None,
        editor: CohortEditor = OPERATOR,
    ) -> Cohort:
        """Rename, describe or redefine a cohort (static cohorts keep their members); one that
        feeds an active export is changed by an admin only."""
        values: dict[str, Any] = {"updated_at": self._clock.now()}
        if name is not None:
            values["name"] = checked_name(name)
        if description is not None:
            values["description"] = checked_description(description)
        if definition is not None:
            parse_definition(definition)

        def check(snapshot: CohortSnapshot) -> None:
            if definition is not None:
                if snapshot.get(cohort_id).kind is CohortKind.STATIC:
                    raise Conflict("a static cohort has no definition; upload a new list instead")
                snapshot.check_references(definition, cohort_id)

        def write(connection: Connection, snapshot: CohortSnapshot) -> Cohort:
            store = CohortStore(connection)
            current = store.get(project_id, cohort_id)
            check_change(editor, current, snapshot.exports(connection, cohort_id), "change")
            if definition is not None:
                values["definition"] = definition
            store.update(cohort_id, values)
            detail = {
                "name": values.get("name", current.name),
                "changes": change_summary(current, values),
            }
            self._audit(connection, project_id, editor, "cohort.update", cohort_id, detail)
            return store.get(project_id, cohort_id)

        return write_checked(self._engine, project_id, check, write)

    def delete(self, project_id: int, cohort_id: int, editor: CohortEditor = OPERATOR) -> None:
        """Delete a cohort no other cohort refers to and no active export reads: a member may
        not delete one that feeds an export, an admin stops its exports first."""
        with write_transaction(self._engine) as connection:
            store = CohortStore(connection)
            cohort = store.get(project_id, cohort_id)
            snapshot = snapshot_in(connection, project_id)
            check_delete(editor, cohort, snapshot.exports(connection, cohort_id))
            for other in snapshot.cohorts.values():
                if any(i == cohort_id for _, i in reference_paths(other.definition)):
                    raise Conflict(
                        f"cohort {other.id} ({other.name!r}) refers to this cohort; change it first"
                    )
            store.delete(cohort_id)
            detail = {"name": cohort.name, "kind": cohort.kind.value}
            self._audit(connection, project_id, editor, "cohort.delete", cohort_id, detail)

    def count(self, project_id: int, cohort_id: int) -> int:
        """How many users qualify now."""
        with read_transaction(self._engine) as connection:
            return CohortStore(connection).count_members(project_id, cohort_id, now_ms(self._clock))

    def with_count(self, project_id: int, cohort_id: int) -> tuple[Cohort, int | None]:
        """A cohort and how many users qualify now (None for a definition that cannot be
        evaluated: ``cohort.problem`` says why), read together."""
        with read_transaction(self._engine) as connection:
            store = CohortStore(connection)
            cohort = store.get(project_id, cohort_id)
            if cohort.problem is not None:
                return cohort, None
            return cohort, store.count_members(project_id, cohort_id, now_ms(self._clock))

    def list_with_counts(self, project_id: int) -> builtins.list[tuple[Cohort, int | None]]:
        """The project's cohorts, each with how many users qualify now (None where the
        definition cannot be evaluated), read together."""
        moment = now_ms(self._clock)
        with read_transaction(self._engine) as connection:
            store = CohortStore(connection)
            return [
                (c, None if c.problem else store.count_members(project_id, c.id, moment))
                for c in store.list(project_id)
            ]

    def count_definition(self, project_id: int, definition: Any) -> int:
        """How many users a definition not yet saved would hold now (a builder's live count);
        validated and reference-checked like one being saved."""
        condition = parse_definition(definition)
        read_snapshot(self._engine, project_id).check_references(definition, None)
        with read_transaction(self._engine) as connection:
            store = CohortStore(connection)
            query = store.definition_query(project_id, condition, now_ms(self._clock), False)
            return store.count(query)

    def member_page(
        self,
        project_id: int,
        cohort_id: int,
        *,
        limit: int = 100,
        cursor: str | None = None,
        properties: Sequence[str] = (),
    ) -> MemberPage:
        """A page of members after ``cursor`` (a distinct_id), with the chosen profile
        properties."""
        if not 1 <= limit <= MAX_PAGE:
            raise BatchError(f"'limit' must be between 1 and {MAX_PAGE}")
        if cursor is not None and "\x00" in cursor:
            raise BatchError("'cursor' must be the next_cursor of the previous page")
        moment = now_ms(self._clock)
        with read_transaction(self._engine) as connection:
            store = CohortStore(connection)
            total = store.count_members(project_id, cohort_id, moment)
            rows = store.member_rows(project_id, cohort_id, moment, cursor, limit + 1)
        members = []
        for row in rows[:limit]:
            profile = dict(row.properties or {})
            chosen = {k: profile[k] for k in properties if k in profile} if properties else profile
            members.append(
                {"distinct_id": row.distinct_id, "properties": chosen, "identified": bool(profile)}
            )
        next_cursor = rows[limit - 1].distinct_id if len(rows) > limit else None
        return MemberPage(total, members, next_cursor)
