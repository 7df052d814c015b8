"""Migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from cohortsync import storage
from cohortsync.partners.registry import seeded_exemptions
from cohortsync.storage.migrate import current_revision, ours, upgrade
from cohortsync.storage.tables import PROFILE_KEY_INDEXES, metadata, mtu_exemptions


def _expression_index(difference: object) -> bool:
    """Alembic cannot compare expression indexes; they are checked by name below."""
    return (
        isinstance(difference, tuple)
        and difference[0] == "remove_index"
        and difference[1].name in PROFILE_KEY_INDEXES
    )


def test_migrated_schema_matches_the_declared_tables(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": ours}
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression")
            differences = compare_metadata(context, metadata)
    assert [d for d in differences if not _expression_index(d)] == []


def test_profile_key_indexes_exist(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'profiles'"
    else:
        query = "SELECT indexname FROM pg_indexes WHERE tablename = 'profiles'"
    with engine.connect() as connection:
        names = set(connection.exec_driver_sql(query).scalars())
    assert set(PROFILE_KEY_INDEXES) <= names


def test_upgrade_is_idempotent(engine: Engine) -> None:
    before = current_revision(engine)
    upgrade(engine)
    assert current_revision(engine) == before is not None


def test_sqlite_runs_in_wal_mode(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_migrations_import_no_live_code() -> None:
    """A migration runs as it was written: what it seeds is frozen in it, not read from code
    that keeps changing."""
    versions = Path(storage.__file__).parent / "migrations" / "versions"
    for script in sorted(versions.glob("*.py")):
        tree = ast.parse(script.read_text())
        imported = [
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        ]
        assert not [m for m in imported if m and m.startswith("cohortsync")], script.name


def test_the_seeded_exemptions_are_what_the_partners_declare(engine: Engine) -> None:
    """A partner's outreach list changed without a migration that seeds the change fails here."""
    with engine.connect() as connection:
        seeded = {tuple(row) for row in connection.execute(sa.select(mtu_exemptions))}
    assert seeded == {tuple(e) for e in seeded_exemptions()}
