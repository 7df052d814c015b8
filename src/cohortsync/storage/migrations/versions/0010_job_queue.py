"""The sync job queue on PostgreSQL: procrastinate's own schema (its tables, types, functions and
triggers, all named ``procrastinate_*``), at the version pinned in pyproject.toml. SQLite has no
job queue (its syncs run on the in-process scheduler), so nothing changes there.

The schema is the one the installed procrastinate ships; the pin and this revision move
together: a newer procrastinate comes with a revision of ours that runs its shipped migrations
(tests/storage/test_job_queue_schema.py fails when the pin moves without one).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from procrastinate.schema import SchemaManager

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The procrastinate release whose schema this revision applies.
SCHEMA_VERSION = "3.10.0"
QUEUE_NAMES = {"prefix": "procrastinate\\_%"}
# What the queue's schema made in the current schema: how to list each kind, and to drop one.
QUEUE_OBJECTS = (
    (
        "SELECT quote_ident(tablename) FROM pg_tables "
        "WHERE schemaname = current_schema() AND tablename LIKE :prefix",
        "DROP TABLE IF EXISTS {} CASCADE",
    ),
    (
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n "
        "ON n.oid = p.pronamespace WHERE n.nspname = current_schema() AND p.proname LIKE :prefix",
        "DROP FUNCTION IF EXISTS {} CASCADE",
    ),
    (
        "SELECT quote_ident(t.typname) FROM pg_type t "
        "JOIN pg_namespace n ON n.oid = t.typnamespace "
        "LEFT JOIN pg_class c ON c.oid = t.typrelid WHERE n.nspname = current_schema() "
        "AND t.typname LIKE :prefix AND (c.oid IS NULL OR c.relkind = 'c')",
        "DROP TYPE IF EXISTS {} CASCADE",
    ),
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    present = bind.exec_driver_sql("SELECT to_regclass('procrastinate_jobs')").scalar()
    if present is not None:  # applied already, by `procrastinate schema --apply`
        return
    # Raw psycopg, no parameters: several statements in one call, and no '%' or ':name' parsed.
    bind.connection.driver_connection.execute(SchemaManager.get_schema())  # type: ignore[union-attr]


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for catalog, drop in QUEUE_OBJECTS:
        for name in bind.execute(sa.text(catalog), QUEUE_NAMES).scalars().all():
            op.execute(drop.format(name))
