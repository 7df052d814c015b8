"""Partner budgets shared by every process: each account's next request and read turn (a token
bucket of capacity 1) and its concurrent request slots. Used on PostgreSQL; SQLite's one process
keeps its budgets in memory, but the tables exist there too, so both engines have one schema.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "partner_budgets",
        sa.Column("account_key", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("next_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("account_key", "kind", name="pk_partner_budgets"),
    )
    op.create_table(
        "partner_slots",
        sa.Column("account_key", sa.String(64), nullable=False),
        sa.Column("slot", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("holder", sa.String(200), nullable=True),
        sa.Column("until", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("account_key", "slot", name="pk_partner_slots"),
    )


def downgrade() -> None:
    op.drop_table("partner_slots")
    op.drop_table("partner_budgets")
