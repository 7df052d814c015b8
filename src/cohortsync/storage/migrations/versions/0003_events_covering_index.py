"""Cohort queries read who did an event when from the index alone: add distinct_id to it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_events_name_time_user", "events", ["project_id", "event", "time", "distinct_id"]
    )
    op.drop_index("ix_events_name_time", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_name_time", "events", ["project_id", "event", "time"])
    op.drop_index("ix_events_name_time_user", table_name="events")
