"""``cohortsync migrate`` applies the job queue's schema on PostgreSQL, once, and only there."""

from __future__ import annotations

import importlib.metadata
import importlib.util

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cohortsync import storage
from cohortsync.storage.migrate import current_revision, upgrade


def _queue_tables(engine: Engine) -> set[str]:
    if engine.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE :prefix"
    else:
        query = "SELECT tablename FROM pg_tables WHERE tablename LIKE :prefix"
    with engine.connect() as connection:
        return set(connection.execute(sa.text(query), {"prefix": "procrastinate%"}).scalars())


def test_the_queue_schema_is_there_on_postgresql_only(engine: Engine) -> None:
    tables = _queue_tables(engine)
    if engine.dialect.name == "sqlite":
        assert tables == set()
    else:
        assert {"procrastinate_jobs", "procrastinate_periodic_defers", "procrastinate_workers"} <= (
            tables
        )


def test_migrating_again_leaves_the_queue_as_it_is(engine: Engine) -> None:
    before = _queue_tables(engine)
    upgrade(engine)
    assert _queue_tables(engine) == before
    assert current_revision(engine) is not None


def test_the_pinned_procrastinate_is_the_one_whose_schema_is_migrated() -> None:
    """Moving procrastinate's pin needs a revision that runs its shipped migrations; until then
    this fails, so the database and the installed queue never disagree."""
    path = storage.__path__[0] + "/migrations/versions/0010_job_queue.py"
    spec = importlib.util.spec_from_file_location("job_queue_revision", path)
    assert spec is not None and spec.loader is not None
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)
    assert importlib.metadata.version("procrastinate") == revision.SCHEMA_VERSION
