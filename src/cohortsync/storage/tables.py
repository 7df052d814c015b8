"""The schema, as SQLAlchemy Core tables. Migrations under ``migrations/`` build exactly this."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# JSON documents: text on SQLite (queried with json_extract), JSONB on PostgreSQL.
JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")
# A 64-bit surrogate key that is SQLite's rowid there.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("token", sa.String(64), nullable=False, unique=True),
    sa.Column("api_secret_hash", sa.String(128), nullable=True),
    sa.Column("identity_mode", sa.String(20), nullable=False, server_default="simplified"),
    sa.Column("created_at", Timestamp, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("project_id", sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

service_accounts = sa.Table(
    "service_accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("project_id", sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("username", sa.String(200), nullable=False, unique=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, nullable=False),
    sa.Column("time", sa.BigInteger, nullable=False),  # milliseconds since the epoch, UTC
    sa.Column("event", sa.String(255), nullable=False),
    sa.Column("distinct_id", sa.String(255), nullable=False),  # as sent; identities resolve it
    sa.Column("insert_id", sa.String(64), nullable=False),
    sa.Column("dedup_hash", sa.BigInteger, nullable=False),
    sa.Column("properties", JSONDocument, nullable=False),
    # (project, time, hash of event+distinct_id+$insert_id) is the dedup key (R-ING-3).
    sa.Index("ux_events_dedup", "project_id", "time", "dedup_hash", unique=True),
    # Cohort conditions find who did an event in a window from this index alone.
    sa.Index("ix_events_name_time_user", "project_id", "event", "time", "distinct_id"),
)

identities = sa.Table(
    "identities",
    metadata,
    sa.Column("project_id", sa.Integer, primary_key=True),
    sa.Column("distinct_id", sa.String(255), primary_key=True),
    sa.Column("canonical_id", sa.String(255), nullable=False),
    sa.Index("ix_identities_canonical", "project_id", "canonical_id"),
)

profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("project_id", sa.Integer, primary_key=True),
    sa.Column("distinct_id", sa.String(255), primary_key=True),  # canonical id
    sa.Column("properties", JSONDocument, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

group_profiles = sa.Table(
    "group_profiles",
    metadata,
    sa.Column("project_id", sa.Integer, primary_key=True),
    sa.Column("group_key", sa.String(255), primary_key=True),
    sa.Column("group_id", sa.String(255), primary_key=True),
    sa.Column("properties", JSONDocument, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

import_checkpoints = sa.Table(
    "import_checkpoints",
    metadata,
    sa.Column("project_id", sa.Integer, primary_key=True),
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("source", sa.String(1000), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("records", sa.BigInteger, nullable=False),
    sa.Column("finished", sa.Boolean, nullable=False, server_default=sa.false()),
)

cohorts = sa.Table(
    "cohorts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("project_id", sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("kind", sa.String(20), nullable=False),  # dynamic | static
    sa.Column("definition", JSONDocument, nullable=True),  # dynamic cohorts only
    sa.Column("created_by", sa.Integer, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Index("ix_cohorts_project", "project_id"),
)

cohort_members = sa.Table(
    "cohort_members",
    metadata,
    sa.Column("cohort_id", sa.ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("distinct_id", sa.String(255), primary_key=True),  # canonical, at upload time
)

integrations = sa.Table(
    "integrations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("project_id", sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("credentials", sa.Text, nullable=False),  # sealed with the keyring, never plain
    sa.Column("settings", JSONDocument, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # connected | error | disconnected
    sa.Column("error", sa.Text, nullable=True),  # the partner's message, secrets redacted
    sa.Column("created_by", sa.Integer, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Index("ix_integrations_project", "project_id"),
)
