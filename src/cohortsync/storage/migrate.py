"""Run Alembic migrations programmatically (``cohortsync migrate`` and tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at our migrations, bound to ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def ours(_obj: object, name: str | None, kind: str, _reflected: bool, _compare: object) -> bool:
    """Whether a schema object is ours to compare and migrate: the job queue's tables
    (``procrastinate_*``, PostgreSQL only) are procrastinate's, applied by revision 0010."""
    return not (kind == "table" and (name or "").startswith("procrastinate_"))


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema up to ``revision``."""
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
