"""Security: disabled people, expiring tokens, an audit log outside projects with the actor's
email, and failed sign-ins counted for throttling.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled_at", Timestamp, nullable=True))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", Timestamp, nullable=True))
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("project_id", existing_type=sa.Integer, nullable=True)
        batch.add_column(sa.Column("actor", sa.String(320), nullable=True))
    op.create_table(
        "sign_in_failures",
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("first_failed_at", Timestamp, nullable=False),
        sa.Column("locked_until", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_sign_in_failures"),
    )


def downgrade() -> None:
    op.drop_table("sign_in_failures")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("actor")
        batch.alter_column("project_id", existing_type=sa.Integer, nullable=False)
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled_at")
