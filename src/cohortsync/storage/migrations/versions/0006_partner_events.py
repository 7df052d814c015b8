"""Partner events in and MTU: webhook secrets and receipts, the MTU exemption list (seeded from the partners'
documented outreach events) and the profile indexes that attribute partner events to users.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Profile properties that partner events are matched on in reverse (Iterable: userId, email).
REVERSE_KEYS = {"email": "$email", "iterable_user_id": "$iterable_user_id"}

# The MTU exemptions this revision seeds, frozen as they were on 2026-11-25: Mixpanel's identity
# events from any source, then each partner's outreach events as its integration page listed them.
# (Later edits of the partners' lists do not belong here: a new revision would add them.)
SEEDED_EXEMPTIONS = (
    ("*", "$create_alias"),
    ("*", "$identify"),
    ("*", "$merge"),
    ("xtremepush", "xp.message.send.batch"),
    ("xtremepush", "xp.message.delivery"),
    ("xtremepush", "xp.message.bounce"),
    ("xtremepush", "xp.message.open"),
    ("xtremepush", "xp.message.click"),
    ("xtremepush", "xp.message.unsubscribe"),
    ("xtremepush", "xp.message.complaint"),
    ("iterable", "emailSend"),
    ("iterable", "emailBounce"),
    ("iterable", "emailComplaint"),
    ("iterable", "emailSendSkip"),
    ("iterable", "emailSubscribe"),
    ("iterable", "emailUnSubscribe"),
    ("iterable", "hostedUnsubscribeClick"),
    ("iterable", "inAppSend"),
    ("iterable", "inAppSendSkip"),
    ("iterable", "pushBounce"),
    ("iterable", "pushSend"),
    ("iterable", "pushSendSkip"),
    ("iterable", "smsBounce"),
    ("iterable", "smsReceived"),
    ("iterable", "smsSend"),
    ("iterable", "smsSendSkip"),
    ("iterable", "webPushSendSkip"),
    ("clevertap", "Notification Sent"),
    ("clevertap", "Notification Viewed"),
    ("clevertap", "Notification Clicked"),
    ("clevertap", "Push Impressions"),
    ("clevertap", "Notification Replied"),
    ("clevertap", "Push Unregistered"),
    ("clevertap", "Control Group"),
    ("clevertap", "Channel Unsubscribed"),
    ("clevertap", "Reachable By"),
    ("clevertap", "Notification Delivered"),
    ("clevertap", "AB Experiment Rendered"),
    ("clevertap", "AB Experiment Stopped"),
    ("clevertap", "AB Experiment Rolled Out"),
    ("clevertap", "Geocluster Entered"),
    ("clevertap", "Geocluster Exited"),
    ("clevertap", "Reply Sent"),
    ("clevertap", "App Uninstalled"),
    ("clevertap", "Webhook Delivered"),
    ("clevertap", "State Transitioned"),
    ("clevertap", "UTM Visited"),
)


def _key_expression(dialect: str, prop: str) -> str:
    if dialect == "postgresql":
        return f"(properties ->> '{prop}')"
    return f"json_extract(properties, '$.\"{prop}\"')"


def upgrade() -> None:
    op.create_table(
        "webhook_secrets",
        sa.Column("integration_id", sa.Integer),
        sa.Column("sealed", sa.Text, nullable=False),
        sa.Column("previous_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("integration_id", name="pk_webhook_secrets"),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name="fk_webhook_secrets_integration_id_integrations",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "webhook_receipts",
        sa.Column("integration_id", sa.Integer),
        sa.Column("insert_id", sa.String(64)),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("integration_id", "insert_id", name="pk_webhook_receipts"),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name="fk_webhook_receipts_integration_id_integrations",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_webhook_receipts_received", "webhook_receipts", ["received_ms"])
    exemptions = op.create_table(
        "mtu_exemptions",
        sa.Column("source", sa.String(40)),
        sa.Column("event", sa.String(255)),
        sa.PrimaryKeyConstraint("source", "event", name="pk_mtu_exemptions"),
    )
    op.bulk_insert(exemptions, [{"source": s, "event": e} for s, e in SEEDED_EXEMPTIONS])
    dialect = op.get_bind().dialect.name
    for name, prop in REVERSE_KEYS.items():
        op.execute(
            f"CREATE INDEX ix_profiles_key_{name} ON profiles "
            f"(project_id, {_key_expression(dialect, prop)})"
        )


def downgrade() -> None:
    for name in REVERSE_KEYS:
        op.execute(f"DROP INDEX ix_profiles_key_{name}")
    op.drop_table("mtu_exemptions")
    op.drop_table("webhook_receipts")
    op.drop_table("webhook_secrets")
