"""Partner truth: when a sync's list was last known to be true and last read back, what the
read found, and the members each run skipped or had rejected.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("syncs") as batch:
        batch.add_column(sa.Column("reconciled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("read_back_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "sync_partner_keys",
        sa.Column("sync_id", sa.Integer, nullable=False),
        sa.Column("member_key", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("sync_id", "member_key", name="pk_sync_partner_keys"),
        sa.ForeignKeyConstraint(
            ["sync_id"], ["syncs.id"], name="fk_sync_partner_keys_sync_id_syncs", ondelete="CASCADE"
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "sync_run_members",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("distinct_id", sa.String(255), nullable=False),
        sa.Column("member_key", sa.String(255), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "outcome", "distinct_id", name="pk_sync_run_members"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_runs.id"],
            name="fk_sync_run_members_run_id_sync_runs",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("sync_run_members")
    op.drop_table("sync_partner_keys")
    with op.batch_alter_table("syncs") as batch:
        batch.drop_column("read_back_at")
        batch.drop_column("reconciled_at")
