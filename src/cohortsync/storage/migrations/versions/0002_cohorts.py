"""Cohorts: dynamic definitions and static membership lists.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "cohorts",
        sa.Column("id", sa.Integer),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("definition", JSONDocument, nullable=True),
        sa.Column("created_by", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cohorts"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_cohorts_project_id_projects",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_cohorts_project", "cohorts", ["project_id"])
    op.create_table(
        "cohort_members",
        sa.Column("cohort_id", sa.Integer, nullable=False),
        sa.Column("distinct_id", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("cohort_id", "distinct_id", name="pk_cohort_members"),
        sa.ForeignKeyConstraint(
            ["cohort_id"],
            ["cohorts.id"],
            name="fk_cohort_members_cohort_id_cohorts",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("cohort_members")
    op.drop_table("cohorts")
