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
    # A disabled person cannot sign in and none of their tokens work (migration 0009).
    sa.Column("disabled_at", Timestamp, nullable=True),
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
    # None: the token lasts until revoked (migration 0009).
    sa.Column("expires_at", Timestamp, nullable=True),
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

syncs = sa.Table(
    "syncs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("project_id", sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("cohort_id", sa.Integer, nullable=False),
    sa.Column("integration_id", sa.Integer, nullable=False),
    sa.Column("mode", sa.String(20), nullable=False),  # one_time | dynamic
    sa.Column("status", sa.String(20), nullable=False),  # active | finished | stopped
    sa.Column("interval_seconds", sa.Integer, nullable=False),
    sa.Column("list_id", sa.String(255), nullable=True),  # the partner's list, once made
    sa.Column("list_name", sa.String(255), nullable=True),
    sa.Column("reconciled_at", Timestamp, nullable=True),  # the list last known to be true
    sa.Column("read_back_at", Timestamp, nullable=True),  # the list last read (partner keys)
    sa.Column("next_run_at", Timestamp, nullable=True),
    sa.Column("lease_owner", sa.String(100), nullable=True),  # the worker running it now
    sa.Column("lease_until", Timestamp, nullable=True),
    sa.Column("created_by", sa.Integer, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.UniqueConstraint("cohort_id", "integration_id", name="uq_syncs_cohort_integration"),
    sa.Index("ix_syncs_project", "project_id"),
)

sync_runs = sa.Table(
    "sync_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sync_id", sa.ForeignKey("syncs.id", ondelete="CASCADE"), nullable=False),
    # planning | running | succeeded | partial | failed | blocked | superseded
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("trigger", sa.String(20), nullable=False),  # schedule | manual | confirm
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("as_of_ms", sa.BigInteger, nullable=False),  # the cohort is evaluated as of this
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.Column("cursor", sa.BigInteger, nullable=False, server_default="0"),  # last plan seq done
    sa.Column("batches", sa.Integer, nullable=False, server_default="0"),  # batches acknowledged
    sa.Column("counts", JSONDocument, nullable=False),
    sa.Column("error", sa.Text, nullable=True),  # the partner's words, secrets redacted
    sa.Column("blocked_reason", sa.Text, nullable=True),
    sa.Column("confirmed_by", sa.Integer, nullable=True),
    sa.Column("confirmed_at", Timestamp, nullable=True),
    sa.Index("ix_sync_runs_sync", "sync_id", "id"),
)

# The acknowledged state (R-SYN-3): who the partner has confirmed is on the list, per sync.
sync_members = sa.Table(
    "sync_members",
    metadata,
    sa.Column("sync_id", sa.ForeignKey("syncs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("distinct_id", sa.String(255), primary_key=True),  # canonical id
    sa.Column("member_key", sa.String(255), nullable=False),  # the partner-side identity
    sa.Column("fields", sa.Text, nullable=False),  # canonical JSON of what was last sent
    sa.Index("ux_sync_members_key", "sync_id", "member_key", unique=True),
)

# The changes a run will send, fixed when it is planned, so a restarted run resumes exactly.
sync_plan = sa.Table(
    "sync_plan",
    metadata,
    sa.Column("run_id", sa.ForeignKey("sync_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("op", sa.String(10), nullable=False),  # remove | add
    sa.Column("distinct_id", sa.String(255), nullable=False),
    sa.Column("member_key", sa.String(255), nullable=False),
    sa.Column("fields", sa.Text, nullable=False),
)

# Members the partner refused, kept until a later run gets them through (R-SYN-5).
sync_rejections = sa.Table(
    "sync_rejections",
    metadata,
    sa.Column("sync_id", sa.ForeignKey("syncs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("member_key", sa.String(255), primary_key=True),
    sa.Column("op", sa.String(10), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
)

# What the partner's list held when a reconciling run read it back (R-X-2), kept for that run.
sync_partner_keys = sa.Table(
    "sync_partner_keys",
    metadata,
    sa.Column("sync_id", sa.ForeignKey("syncs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("member_key", sa.String(255), primary_key=True),
    sqlite_with_rowid=False,  # one B-tree: a million keys insert faster
)

# Members a run skipped or the partner rejected, with the reason (R-SYN-7), for the run's report.
sync_run_members = sa.Table(
    "sync_run_members",
    metadata,
    sa.Column("run_id", sa.ForeignKey("sync_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("outcome", sa.String(10), primary_key=True),  # skipped | rejected
    sa.Column("distinct_id", sa.String(255), primary_key=True),
    sa.Column("member_key", sa.String(255), nullable=True),  # none for a skipped member
    sa.Column("reason", sa.Text, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # None for actions outside any project (people, tokens, keys, sign-ins).
    sa.Column("project_id", sa.Integer, nullable=True),
    sa.Column("user_id", sa.Integer, nullable=True),
    # The actor's email as it was, kept when the person is later removed.
    sa.Column("actor", sa.String(320), nullable=True),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("detail", JSONDocument, nullable=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Index("ix_audit_log_project", "project_id", "id"),
)

# Failed sign-ins counted per key ("email:…" or "address:…") so every process of the service
# throttles the same guesser (migration 0009).
sign_in_failures = sa.Table(
    "sign_in_failures",
    metadata,
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("first_failed_at", Timestamp, nullable=False),
    sa.Column("locked_until", Timestamp, nullable=True),
)

# The secret a partner proves its webhook calls with (R-EVT-2), sealed with the keyring. After a
# rotation the previous secret stays valid until ``previous_until``, so the partner can catch up.
webhook_secrets = sa.Table(
    "webhook_secrets",
    metadata,
    sa.Column(
        "integration_id",
        sa.ForeignKey("integrations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("sealed", sa.Text, nullable=False),  # {"current": …, "previous"?: …}
    sa.Column("previous_until", Timestamp, nullable=True),
    sa.Column("rotated_at", Timestamp, nullable=False),
)

# When each partner event without a time of its own (a CleverTap webhook campaign call) was first
# received: a replay of it takes that time again, so it has the same dedup key and is stored once.
webhook_receipts = sa.Table(
    "webhook_receipts",
    metadata,
    sa.Column(
        "integration_id",
        sa.ForeignKey("integrations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("insert_id", sa.String(64), primary_key=True),
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_webhook_receipts_received", "received_ms"),
)

# Events that do not make a user count toward MTU (R-MTU-1), when they carry ``source`` as their
# $source ("*": whatever the source). Seeded from the partners' lists; an operator may edit it.
mtu_exemptions = sa.Table(
    "mtu_exemptions",
    metadata,
    sa.Column("source", sa.String(40), primary_key=True),
    sa.Column("event", sa.String(255), primary_key=True),
)

# The next moment each partner account may send ("sent": stamped as each request goes) or read
# ("read": a token bucket of capacity 1), shared by every process on PostgreSQL (migration 0011;
# SQLite's one process paces in memory). ``account_key`` is a sha256 of partner and account: no
# secret is stored.
partner_budgets = sa.Table(
    "partner_budgets",
    metadata,
    sa.Column("account_key", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(20), primary_key=True),
    sa.Column("next_at", Timestamp, nullable=False),
)

# The concurrent request slots of each partner account (rows 0 … cap - 1, made when first needed):
# a slot is free when it has no ``holder`` or its holder's time ran out (``until``), so a slot of
# a killed process comes back by itself (migration 0011).
partner_slots = sa.Table(
    "partner_slots",
    metadata,
    sa.Column("account_key", sa.String(64), primary_key=True),
    sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("holder", sa.String(200), nullable=True),
    sa.Column("until", Timestamp, nullable=True),
)

# Expression indexes (built by migration 0006, which SQLAlchemy cannot declare per dialect):
# partner events are matched to users by these profile properties (see warehouse.profile_keys).
PROFILE_KEY_INDEXES = {
    "ix_profiles_key_email_folded": "$email",  # over lower(...) (migration 0007)
    "ix_profiles_key_iterable_user_id": "$iterable_user_id",
}
# Keys matched whatever their case: an email address is the same in any case.
CASE_FOLDED_KEYS = frozenset({"$email"})
