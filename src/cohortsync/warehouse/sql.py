"""Dialect-aware SQL building blocks shared by the stores: upserts and advisory locks."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

# Parameters of one SQLite statement: an ``IN`` list of :func:`select_in`, the ``VALUES`` of
# :func:`bulk_insert_ignoring` (well under the 999 of the oldest SQLite builds).
_SQLITE_IN_LIST = 500


def upsert(
    connection: Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str],
) -> None:
    """Insert ``rows``; where ``keys`` already exist, overwrite the ``update`` columns."""
    if not rows:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={column: statement.excluded[column] for column in update},
    )
    connection.execute(statement, list(rows))


def insert_ignoring_duplicates(
    connection: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]
) -> None:
    """Insert ``rows``, silently skipping those whose key is already stored."""
    if not rows:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    connection.execute(dialect.insert(table).on_conflict_do_nothing(), list(rows))


def lock_project(connection: Connection, project_id: int, purpose: str) -> None:
    """Serialise writers of one project's ``purpose`` (PostgreSQL advisory lock; SQLite already
    serialises writers with BEGIN IMMEDIATE)."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(:purpose), :project_id)"),
            {"purpose": purpose, "project_id": project_id},
        )


def select_in(
    connection: Connection,
    table: str,
    columns: Sequence[str],
    project_id: int,
    key: str,
    values: Sequence[Any],
) -> list[tuple[Any, ...]]:
    """``columns`` of the project's rows of ``table`` whose ``key`` is one of ``values``,
    straight through the DB-API (the hot path: no per-value SQLAlchemy work). SQLite gets
    ``IN`` lists of at most 500 parameters, PostgreSQL one ``= ANY`` array. Plain columns only:
    values come back as the driver reads them."""
    if not values:
        return []
    names = ", ".join(columns)
    cursor = connection.connection.cursor()
    try:
        if connection.dialect.name == "sqlite":
            found: list[tuple[Any, ...]] = []
            for start in range(0, len(values), _SQLITE_IN_LIST):
                part = list(values[start : start + _SQLITE_IN_LIST])
                marks = ", ".join(["?"] * len(part))
                sql = f"SELECT {names} FROM {table} WHERE project_id = ? AND {key} IN ({marks})"  # noqa: S608
                found.extend(cursor.execute(sql, [project_id, *part]).fetchall())
            return found
        sql = f"SELECT {names} FROM {table} WHERE project_id = %s AND {key} = ANY(%s)"  # noqa: S608
        cursor.execute(sql, (project_id, list(values)))
        return list(cursor.fetchall())
    finally:
        cursor.close()


def bulk_insert_ignoring(
    connection: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert tuples straight through the DB-API (the hot path: no per-row SQLAlchemy work),
    skipping rows whose key is already stored. ``jsonb`` columns are cast on PostgreSQL.

    SQLite gets multi-row ``VALUES`` lists of at most 500 parameters, in order (the same rows,
    ids and skipped duplicates as one statement a row, for about a sixth less CPU)."""
    if not rows:
        return
    names = ", ".join(columns)
    cursor = connection.connection.cursor()
    try:
        if connection.dialect.name == "sqlite":
            one = f"({', '.join(['?'] * len(columns))})"
            per = max(1, _SQLITE_IN_LIST // len(columns))
            for start in range(0, len(rows), per):
                part = rows[start : start + per]
                values = ", ".join([one] * len(part))
                sql = f"INSERT OR IGNORE INTO {table} ({names}) VALUES {values}"  # noqa: S608
                cursor.execute(sql, list(chain.from_iterable(part)))
        else:
            marks = ", ".join("%s::jsonb" if c == "properties" else "%s" for c in columns)
            sql = f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"  # noqa: S608
            cursor.executemany(sql, rows)
    finally:
        cursor.close()
