"""Partner events find users by email whatever its case: the $email index of 0006 is replaced by
one over the lower-cased address.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _email(dialect: str) -> str:
    if dialect == "postgresql":
        return "(properties ->> '$email')"
    return "json_extract(properties, '$.\"$email\"')"


def _folded(dialect: str) -> str:
    # ASCII capitals lowered, nothing else: what SQLite's lower() does (PostgreSQL's follows the
    # locale), spelled as warehouse.profile_keys spells it.
    if dialect == "postgresql":
        capitals = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        return f"translate({_email(dialect)}, '{capitals}', '{capitals.lower()}')"
    return f"lower({_email(dialect)})"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP INDEX ix_profiles_key_email")
    op.execute(
        f"CREATE INDEX ix_profiles_key_email_folded ON profiles (project_id, {_folded(dialect)})"
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP INDEX ix_profiles_key_email_folded")
    op.execute(f"CREATE INDEX ix_profiles_key_email ON profiles (project_id, {_email(dialect)})")
