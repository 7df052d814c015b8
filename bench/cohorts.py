"""Cohort evaluation on a demo dataset (default 1 M users / ~10 M events): five representative
cohorts, each timed against a hand-written SQL query for the same cohort on the same engine.

The dataset is built once into bench/.cache (kept between runs) because building it takes minutes.
"""

from __future__ import annotations

import functools
import multiprocessing
import sqlite3
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bench.harness import Row
from cohortsync.clock import SystemClock, now_ms
from cohortsync.demo.dataset import DemoConfig, generate
from cohortsync.domain.identity import IdentityMode
from cohortsync.ingest.events import PreparedBatch, prepare_events
from cohortsync.services import accounts, cohorts
from cohortsync.services.ingestion import IngestionService
from cohortsync.storage.database import create_engine, read_transaction, write_transaction
from cohortsync.storage.migrate import upgrade

SUITE = "cohorts"
CACHE = Path(__file__).parent / ".cache"
SHARD = 20_000
DAY = 86_400_000

Work = tuple[list[PreparedBatch], list[list[dict[str, Any]]]]


def _shard(args: tuple[int, int, int]) -> Work:
    """Generate and validate one shard of users (in a worker process)."""
    first, users, anchor = args
    prepared: list[PreparedBatch] = []
    profiles: list[list[dict[str, Any]]] = []
    config = DemoConfig(users=users, first_user=first)
    for kind, batch in generate(config, anchor):
        if kind == "events":
            records = list(enumerate(batch))
            prepared.append(
                prepare_events(records, 1, IdentityMode.SIMPLIFIED, now_ms=anchor, oldest_ms=0)
            )
        else:
            profiles.append(batch)
    return prepared, profiles


def _bounded(pool: Any, shards: list[tuple[int, int, int]], in_flight: int) -> Iterator[Work]:
    """Results in order, with at most ``in_flight`` shards prepared ahead (bounded memory)."""
    pending: deque[Any] = deque()
    for shard in shards:
        pending.append(pool.apply_async(_shard, (shard,)))
        if len(pending) >= in_flight:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def build_dataset(path: Path, users: int, progress: Callable[[str], None]) -> int:
    """Seed a fresh SQLite file with the demo dataset; returns the evaluation time it used."""
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    project, _ = accounts.ensure_default_project(engine)
    service = IngestionService(engine, SystemClock())
    anchor = now_ms(SystemClock())
    shards = [(first, min(SHARD, users - first), anchor) for first in range(0, users, SHARD)]
    done = 0
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        for prepared, profiles in _bounded(pool, shards, in_flight=3):
            for events in prepared:
                service.store_import(project, events, anchor)
            for updates in profiles:
                service.import_profiles(project, updates)
            done += 1
            progress(f"  building the dataset: {min(done * SHARD, users):,} of {users:,} users")
    engine.dispose()
    with sqlite3.connect(path) as direct:
        direct.execute("ANALYZE")
        direct.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (path.with_suffix(".anchor")).write_text(str(anchor))
    return anchor


def _dataset(users: int, progress: Callable[[str], None]) -> tuple[Engine, int]:
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"cohorts-{users}.db"
    anchor_file = path.with_suffix(".anchor")
    if not (path.exists() and anchor_file.exists()):
        for stale in CACHE.glob(f"cohorts-{users}.*"):
            stale.unlink()
        build_dataset(path, users, progress)
    return create_engine(f"sqlite:///{path}"), int(anchor_file.read_text())


CANONICAL = "COALESCE(i.canonical_id, e.distinct_id)"
EVENTS_JOIN = (
    "events e LEFT JOIN identities i "
    "ON i.project_id = e.project_id AND i.distinct_id = e.distinct_id"
)


def _did(event: str, since: str, extra: str = "", having: str = "") -> str:
    """Hand-written: canonical users who did ``event`` since a bound, with extra filters."""
    return (
        f"SELECT {CANONICAL} FROM {EVENTS_JOIN} WHERE e.project_id = 1 AND e.event = '{event}' "
        f"{since} {extra} GROUP BY 1 {having}"
    )


def cohort_cases(now: int) -> list[tuple[str, dict[str, Any], str]]:
    """(name, definition, hand-written COUNT query) for the five representative cohorts."""
    last30 = f"AND e.time >= {now - 30 * DAY} AND e.time <= {now}"
    last7 = f"AND e.time >= {now - 7 * DAY} AND e.time <= {now}"
    last14 = f"AND e.time >= {now - 14 * DAY} AND e.time <= {now}"
    pro = "json_extract(p.properties, '$.plan') = 'pro'"
    return [
        (
            "property only (plan = pro)",
            {"property": "plan", "op": "equals", "value": "pro"},
            f"SELECT count(*) FROM profiles p WHERE p.project_id = 1 AND {pro}",
        ),
        (
            "one behaviour (Purchase, last 30 days)",
            {"event": "Purchase", "within": {"last": 30, "unit": "day"}},
            f"SELECT count(*) FROM ({_did('Purchase', last30)})",
        ),
        (
            "behaviour with property filter (2+ Purchases over 50, 30 days)",
            {
                "event": "Purchase",
                "count": {"op": ">=", "value": 2},
                "within": {"last": 30, "unit": "day"},
                "where": [{"property": "amount", "op": "gt", "value": 50}],
            },
            "SELECT count(*) FROM ("
            + _did(
                "Purchase",
                last30,
                "AND json_extract(e.properties, '$.amount') > 50",
                "HAVING count(*) >= 2",
            )
            + ")",
        ),
        (
            "nested any/all/not",
            {
                "all": [
                    {
                        "any": [
                            {"property": "plan", "op": "equals", "value": "pro"},
                            {"property": "plan", "op": "equals", "value": "enterprise"},
                        ]
                    },
                    {"not": {"event": "App Open", "within": {"last": 7, "unit": "day"}}},
                    {"event": "Purchase"},
                ]
            },
            "SELECT count(*) FROM profiles p WHERE p.project_id = 1 "
            "AND json_extract(p.properties, '$.plan') IN ('pro', 'enterprise') "
            f"AND p.distinct_id NOT IN ({_did('App Open', last7)}) "
            f"AND p.distinct_id IN ({_did('Purchase', '')})",
        ),
        (
            "in_cohort (pro users who searched in 14 days)",
            {"all": [{"in_cohort": 1}, {"event": "Search", "within": {"last": 14, "unit": "day"}}]},
            f"SELECT count(*) FROM profiles p WHERE p.project_id = 1 AND {pro} "
            f"AND p.distinct_id IN ({_did('Search', last14)})",
        ),
    ]


def _count(connection: Connection, sql: str) -> int:
    return int(connection.exec_driver_sql(sql).scalar_one())


def _median_seconds(run: Callable[[], int], repeats: int) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def run(
    users: int = 1_000_000, repeats: int = 3, progress: Callable[[str], None] = print
) -> list[Row]:
    """The cohort rows of the benchmark table."""
    engine, now = _dataset(users, progress)
    with read_transaction(engine) as connection:
        total_events = connection.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
    with write_transaction(engine) as connection:
        connection.exec_driver_sql("DELETE FROM cohorts")
        ids = [
            cohorts.create_cohort(connection, 1, name, definition).id
            for name, definition, _ in cohort_cases(now)
        ]
    rows = [Row(SUITE, f"dataset: {users:,} users, {total_events:,} events (SQLite)", 0, "")]
    for cohort_id, (name, _, hand) in zip(ids, cohort_cases(now), strict=True):
        with read_transaction(engine) as connection:
            compiled, got = _median_seconds(
                functools.partial(cohorts.count_members, connection, 1, cohort_id, now), repeats
            )
            written, expected = _median_seconds(
                functools.partial(_count, connection, hand), repeats
            )
        ratio = compiled / written if written else float("inf")
        rows.append(
            Row(
                SUITE,
                f"{name}: compiled ({got:,} members)",
                compiled,
                "s",
                "<= 5 s",
                compiled <= 5 and got == expected,
            )
        )
        rows.append(
            Row(
                SUITE,
                f"{name}: compiled / hand-written ({written:.2f} s)",
                ratio,
                "x",
                "<= 1.3x",
                ratio <= 1.3,
            )
        )
    engine.dispose()
    return rows
