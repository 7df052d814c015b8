"""Foundation: projects, people, tokens, events, identities, profiles, import checkpoints.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("api_secret_hash", sa.String(128), nullable=True),
        sa.Column("identity_mode", sa.String(20), nullable=False, server_default="simplified"),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("token", name="uq_projects_token"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "memberships",
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "project_id", name="pk_memberships"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_memberships_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_memberships_project_id_projects",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_api_tokens_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "service_accounts",
        sa.Column("id", sa.Integer),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("username", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_service_accounts"),
        sa.UniqueConstraint("username", name="uq_service_accounts_username"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_service_accounts_project_id_projects",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "events",
        sa.Column("id", BigId, autoincrement=True),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("time", sa.BigInteger, nullable=False),
        sa.Column("event", sa.String(255), nullable=False),
        sa.Column("distinct_id", sa.String(255), nullable=False),
        sa.Column("insert_id", sa.String(64), nullable=False),
        sa.Column("dedup_hash", sa.BigInteger, nullable=False),
        sa.Column("properties", JSONDocument, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ux_events_dedup", "events", ["project_id", "time", "dedup_hash"], unique=True)
    op.create_index("ix_events_name_time", "events", ["project_id", "event", "time"])
    op.create_table(
        "identities",
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("distinct_id", sa.String(255), nullable=False),
        sa.Column("canonical_id", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "distinct_id", name="pk_identities"),
    )
    op.create_index("ix_identities_canonical", "identities", ["project_id", "canonical_id"])
    op.create_table(
        "profiles",
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("distinct_id", sa.String(255), nullable=False),
        sa.Column("properties", JSONDocument, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "distinct_id", name="pk_profiles"),
    )
    op.create_table(
        "group_profiles",
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("group_key", sa.String(255), nullable=False),
        sa.Column("group_id", sa.String(255), nullable=False),
        sa.Column("properties", JSONDocument, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "group_key", "group_id", name="pk_group_profiles"),
    )
    op.create_table(
        "import_checkpoints",
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("records", sa.BigInteger, nullable=False),
        sa.Column("finished", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("project_id", "fingerprint", name="pk_import_checkpoints"),
    )


def downgrade() -> None:
    for table in (
        "import_checkpoints",
        "group_profiles",
        "profiles",
        "identities",
        "events",
        "service_accounts",
        "api_tokens",
        "memberships",
        "users",
        "projects",
    ):
        op.drop_table(table)
