"""Static cohorts by email (issue 15, finding 5): the time to make a cohort of 20,000 emails out of
a project of 100,000 profiles, and the longest a small ingestion write waits meanwhile (the write
lock is taken only for the short insert). SQLite always; PostgreSQL with
``COHORTSYNC_BENCH_POSTGRES_URL``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.harness import Row
from cohortsync.clock import SystemClock
from cohortsync.domain.accounts import Project
from cohortsync.services.cohorts import CohortService
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.projects import ProjectService
from cohortsync.storage.database import create_engine
from cohortsync.storage.migrate import upgrade

SUITE = "static cohorts"
PROFILES = 100_000
EMAILS = 20_000
TARGET_SECONDS = 3.0
TARGET_STALL_MS = 500.0


def _seed(engine: Engine) -> Project:
    """PROFILES profiles with an email each, in mixed case."""
    project, _ = ProjectService(engine, SystemClock()).ensure_default()
    ingestion = IngestionService(engine, SystemClock())
    for start in range(0, PROFILES, 5_000):
        updates = [
            {
                "$token": project.token,
                "$distinct_id": f"user-{i}",
                "$set": {"$email": f"User{i}@Example.com", "plan": "pro" if i % 3 else "free"},
            }
            for i in range(start, min(start + 5_000, PROFILES))
        ]
        assert not ingestion.engage(updates).failed
    return project


def _write_until(
    done: threading.Event, longest: list[float], ingestion: IngestionService, project: Project
) -> None:
    """Small profile writes, as ingestion makes them, until ``done``; the longest in seconds
    goes to ``longest[0]``."""
    number = 0
    while not done.is_set():
        started = time.perf_counter()
        update = {"$token": project.token, "$distinct_id": f"w{number}", "$set": {"a": 1}}
        ingestion.engage([update])
        longest[0] = max(longest[0], time.perf_counter() - started)
        number += 1
        time.sleep(0.005)


def _measure(engine: Engine, project: Project, repeats: int) -> tuple[float, float]:
    """Median seconds to make the cohort, and the longest ingestion write meanwhile (ms)."""
    cohorts = CohortService(engine, SystemClock())
    ingestion = IngestionService(engine, SystemClock())
    emails = [f"user{i * 5}@example.com" for i in range(EMAILS)]  # another case than stored
    seconds, stalls = [], []
    for attempt in range(repeats):
        done = threading.Event()
        longest = [0.0]

        writer = threading.Thread(target=_write_until, args=(done, longest, ingestion, project))
        writer.start()
        started = time.perf_counter()
        cohort = cohorts.create_static(project.id, f"bench {attempt}", emails=emails)
        seconds.append(time.perf_counter() - started)
        done.set()
        writer.join()
        stalls.append(longest[0] * 1000)
        assert cohorts.count(project.id, cohort.id) == EMAILS
        cohorts.delete(project.id, cohort.id)
    return statistics.median(seconds), max(stalls)


def _rows(engine_name: str, engine: Engine, repeats: int) -> list[Row]:
    project = _seed(engine)
    seconds, stall = _measure(engine, project, repeats)
    name = f"{EMAILS:,} emails of {PROFILES:,} profiles ({engine_name})"
    return [
        Row(
            SUITE,
            f"make a static cohort of {name}",
            seconds,
            "s",
            f"< {TARGET_SECONDS:.0f} s",
            seconds < TARGET_SECONDS,
        ),
        Row(
            SUITE,
            f"longest ingestion write meanwhile ({engine_name})",
            stall,
            "ms",
            f"< {TARGET_STALL_MS:.0f} ms",
            stall < TARGET_STALL_MS,
        ),
    ]


def run(repeats: int, postgres_url: str | None = None) -> list[Row]:
    """The suite's rows, on SQLite and (given its URL) PostgreSQL."""
    directory = Path(tempfile.mkdtemp(prefix="bench-static-"))
    rows: list[Row] = []
    try:
        engine = create_engine(f"sqlite:///{directory / 'static.db'}")
        upgrade(engine)
        rows += _rows("SQLite", engine, repeats)
        engine.dispose()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if postgres_url:
        name = f"cohortsync_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(postgres_url).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sa.engine.make_url(postgres_url).set(database=name)
        engine = create_engine(url.render_as_string(hide_password=False))
        try:
            upgrade(engine)
            rows += _rows("PostgreSQL", engine, repeats)
        finally:
            engine.dispose()
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    return rows


if __name__ == "__main__":  # pragma: no cover - a quick look without the other suites
    from bench.harness import render

    print(render(run(1, os.environ.get("COHORTSYNC_BENCH_POSTGRES_URL"))))
