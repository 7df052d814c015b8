"""Syncs: exports of cohorts to integrations, their runs, plans and acknowledged members.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "syncs",
        sa.Column("id", sa.Integer),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("cohort_id", sa.Integer, nullable=False),
        sa.Column("integration_id", sa.Integer, nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("interval_seconds", sa.Integer, nullable=False),
        sa.Column("list_id", sa.String(255), nullable=True),
        sa.Column("list_name", sa.String(255), nullable=True),
        sa.Column("next_run_at", Timestamp, nullable=True),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_until", Timestamp, nullable=True),
        sa.Column("created_by", sa.Integer, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_syncs"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_syncs_project_id_projects", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("cohort_id", "integration_id", name="uq_syncs_cohort_integration"),
    )
    op.create_index("ix_syncs_project", "syncs", ["project_id"])
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer),
        sa.Column("sync_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("as_of_ms", sa.BigInteger, nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("cursor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("batches", sa.Integer, nullable=False, server_default="0"),
        sa.Column("counts", JSONDocument, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("blocked_reason", sa.Text, nullable=True),
        sa.Column("confirmed_by", sa.Integer, nullable=True),
        sa.Column("confirmed_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sync_runs"),
        sa.ForeignKeyConstraint(
            ["sync_id"], ["syncs.id"], name="fk_sync_runs_sync_id_syncs", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_sync_runs_sync", "sync_runs", ["sync_id", "id"])
    op.create_table(
        "sync_members",
        sa.Column("sync_id", sa.Integer, nullable=False),
        sa.Column("distinct_id", sa.String(255), nullable=False),
        sa.Column("member_key", sa.String(255), nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("sync_id", "distinct_id", name="pk_sync_members"),
        sa.ForeignKeyConstraint(
            ["sync_id"], ["syncs.id"], name="fk_sync_members_sync_id_syncs", ondelete="CASCADE"
        ),
    )
    op.create_index("ux_sync_members_key", "sync_members", ["sync_id", "member_key"], unique=True)
    op.create_table(
        "sync_plan",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("op", sa.String(10), nullable=False),
        sa.Column("distinct_id", sa.String(255), nullable=False),
        sa.Column("member_key", sa.String(255), nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "seq", name="pk_sync_plan"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name="fk_sync_plan_run_id_sync_runs", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "sync_rejections",
        sa.Column("sync_id", sa.Integer, nullable=False),
        sa.Column("member_key", sa.String(255), nullable=False),
        sa.Column("op", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("sync_id", "member_key", name="pk_sync_rejections"),
        sa.ForeignKeyConstraint(
            ["sync_id"], ["syncs.id"], name="fk_sync_rejections_sync_id_syncs", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("detail", JSONDocument, nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_project", "audit_log", ["project_id", "id"])


def downgrade() -> None:
    for table in ("audit_log", "sync_rejections", "sync_plan", "sync_members", "sync_runs"):
        op.drop_table(table)
    op.drop_table("syncs")
