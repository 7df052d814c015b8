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
from cohortsync.services.cohorts import CohortService
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.projects import ProjectService
from cohortsync.storage.cohort_store import CohortStore
from cohortsync.storage.database import create_engine, read_transaction, write_transaction
from cohortsync.storage.migrate import upgrade

SUITE = "cohorts"
CACHE = Path(__file__).parent / ".cache"
SHARD = 20_000
DAY = 86_400_000
TIMEOUT_S = 600

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
    project, _ = ProjectService(engine, SystemClock()).ensure_default()
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
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)  # a dataset cached by an older version gets the newer schema
    return engine, int(anchor_file.read_text())


CANONICAL = "COALESCE(i.canonical_id, e.distinct_id)"
EVENTS_JOIN = (
    "events e LEFT JOIN identities i "
    "ON i.project_id = e.project_id AND i.distinct_id = e.distinct_id"
)


def _prop(dialect: str, alias: str, name: str) -> str:
    """Hand-written access to a JSON text property."""
    if dialect == "sqlite":
        return f"json_extract({alias}.properties, '$.{name}')"
    return f"({alias}.properties->>'{name}')"


def _did(event: str, since: str, extra: str = "", having: str = "") -> str:
    """Hand-written: canonical users who did ``event`` since a bound, with extra filters."""
    return (
        f"SELECT {CANONICAL} FROM {EVENTS_JOIN} WHERE e.project_id = 1 AND e.event = '{event}' "
        f"{since} {extra} GROUP BY 1 {having}"
    )


def _absent(dialect: str, users: str) -> str:
    """Hand-written anti-join of ``p.distinct_id`` against a query of user ids, in the form each
    engine plans best (PostgreSQL runs NOT IN over a large set as a per-row subplan)."""
    if dialect == "postgresql":
        return f"NOT EXISTS (SELECT 1 FROM ({users}) AS seen(id) WHERE seen.id = p.distinct_id)"
    return f"p.distinct_id NOT IN ({users})"


def cohort_cases(now: int, dialect: str = "sqlite") -> list[tuple[str, dict[str, Any], str]]:
    """(name, definition, hand-written COUNT query) for the five representative cohorts."""
    last30 = f"AND e.time >= {now - 30 * DAY} AND e.time <= {now}"
    last7 = f"AND e.time >= {now - 7 * DAY} AND e.time <= {now}"
    last14 = f"AND e.time >= {now - 14 * DAY} AND e.time <= {now}"
    pro = f"{_prop(dialect, 'p', 'plan')} = 'pro'"
    amount = _prop(dialect, "e", "amount")
    amount_over_50 = f"AND {amount} > 50" if dialect == "sqlite" else f"AND {amount}::numeric > 50"
    return [
        (
            "property only (plan = pro)",
            {"property": "plan", "op": "equals", "value": "pro"},
            f"SELECT count(*) FROM profiles p WHERE p.project_id = 1 AND {pro}",
        ),
        (
            "one behaviour (Purchase, last 30 days)",
            {"event": "Purchase", "within": {"last": 30, "unit": "day"}},
            f"SELECT count(*) FROM ({_did('Purchase', last30)}) AS buyers",
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
            + _did("Purchase", last30, amount_over_50, "HAVING count(*) >= 2")
            + ") AS buyers",
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
            f"AND {_prop(dialect, 'p', 'plan')} IN ('pro', 'enterprise') "
            f"AND {_absent(dialect, _did('App Open', last7))} "
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


def measure(engine: Engine, now: int, label: str, repeats: int) -> list[Row]:
    """Time the five cohorts, compiled and hand-written, on one engine."""
    dialect = engine.dialect.name
    cases = cohort_cases(now, dialect)
    with write_transaction(engine) as connection:
        if dialect == "postgresql":  # ids from 1 again, also in a reused copy
            connection.exec_driver_sql("TRUNCATE cohorts RESTART IDENTITY CASCADE")
        else:
            connection.exec_driver_sql("DELETE FROM cohorts")
    service = CohortService(engine, SystemClock())
    ids = [service.create(1, name, definition).id for name, definition, _ in cases]
    if ids[0] != 1:  # the in_cohort case refers to cohort 1
        raise RuntimeError("the cohorts table must start from id 1; use a fresh dataset")
    rows = []
    for cohort_id, (name, _, hand) in zip(ids, cases, strict=True):
        with read_transaction(engine) as connection:
            if dialect == "postgresql":  # a plan gone wrong shows as a failure, not a hang
                connection.exec_driver_sql(f"SET LOCAL statement_timeout = '{TIMEOUT_S}s'")
            compiled, got = _median_seconds(
                functools.partial(CohortStore(connection).count_members, 1, cohort_id, now), repeats
            )
            written, expected = _median_seconds(
                functools.partial(_count, connection, hand), repeats
            )
        ratio = compiled / written if written else float("inf")
        same = got == expected
        rows.append(
            Row(
                SUITE,
                f"{label} {name}: compiled, {got:,} members"
                + ("" if same else f" (hand-written: {expected:,})"),
                compiled,
                "s",
                "<= 5 s" if dialect == "sqlite" else "",
                (compiled <= 5 and same) if dialect == "sqlite" else None,
            )
        )
        rows.append(
            Row(
                SUITE,
                f"{label} {name}: compiled / hand-written ({written:.2f} s)",
                ratio,
                "x",
                "<= 1.3x",
                ratio <= 1.3,
            )
        )
    return rows


def _same_copy(admin: Engine, name: str, source: Engine, target_url: sa.engine.URL) -> bool:
    """Whether a PostgreSQL copy of this dataset (same rows in every table) already exists."""
    with admin.connect() as connection:
        found = connection.exec_driver_sql(
            "SELECT 1 FROM pg_database WHERE datname = %(name)s", {"name": name}
        ).first()
    if found is None:
        return False
    target = create_engine(target_url.render_as_string(hide_password=False))
    try:
        for table in ("events", "identities", "profiles"):
            query = f"SELECT count(*) FROM {table}"
            with source.connect() as a, target.connect() as b:
                if a.exec_driver_sql(query).scalar() != b.exec_driver_sql(query).scalar():
                    return False
        return True
    except sa.exc.DBAPIError:
        return False
    finally:
        target.dispose()


def copy_to_postgres(source: Engine, url: str, progress: Callable[[str], None]) -> Engine:
    """A fresh PostgreSQL database holding the same events, identities and profiles."""
    admin = create_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    name = "cohortsync_bench"
    target_url = sa.engine.make_url(create_engine(url).url).set(database=name)
    if _same_copy(admin, name, source, target_url):
        progress("  reusing the PostgreSQL copy of the dataset")
        admin.dispose()
        return create_engine(target_url.render_as_string(hide_password=False))
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    target = create_engine(target_url.render_as_string(hide_password=False))
    upgrade(target)
    ProjectService(target, SystemClock()).ensure_default()
    tables = {
        "events": "project_id, time, event, distinct_id, insert_id, dedup_hash, properties",
        "identities": "project_id, distinct_id, canonical_id",
        "profiles": "project_id, distinct_id, properties, updated_at",
    }
    for table, columns in tables.items():
        progress(f"  copying {table} to PostgreSQL")
        raw = target.raw_connection()
        try:
            cursor = raw.cursor()
            with (
                source.connect() as reader,
                cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
            ):
                result = reader.exec_driver_sql(f"SELECT {columns} FROM {table}")
                for row in result:
                    copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
    with target.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    return target


def run(
    users: int = 1_000_000,
    repeats: int = 3,
    progress: Callable[[str], None] = print,
    postgres_url: str | None = None,
) -> list[Row]:
    """The cohort rows of the benchmark table (PostgreSQL too when a URL is given)."""
    engine, now = _dataset(users, progress)
    with read_transaction(engine) as connection:
        total_events = connection.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
    rows = [Row(SUITE, f"dataset: {users:,} users, {total_events:,} events", 0, "")]
    rows += measure(engine, now, "SQLite", repeats)
    if postgres_url:
        target = copy_to_postgres(engine, postgres_url, progress)
        rows += measure(target, now, "PostgreSQL", repeats)
        target.dispose()
    engine.dispose()
    return rows
