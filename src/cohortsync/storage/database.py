"""Engines for SQLite (WAL, one file) and PostgreSQL, and write transactions that serialise.

A transaction the database cannot carry out for a reason outside the request (SQLite's write
lock held past the busy timeout, a full disk, a PostgreSQL connection cut by a restart) raises
a domain error (``DatabaseBusy``, ``DatabaseFull``, ``DatabaseUnavailable``: 503 with
Retry-After), never a driver exception; everything else is raised as it was.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from cohortsync.domain.errors import DatabaseBusy, DatabaseFull, DatabaseUnavailable

_WRITE_OPTION = "cohortsync_write"
DEFAULT_BUSY_TIMEOUT_SECONDS = 60.0
# SQLite's primary result codes (the low byte of an extended code) that say "not now".
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL = 5, 6, 13
# PostgreSQL SQLSTATEs of a server going away: class 08 (connection exception), and
# admin_shutdown, crash_shutdown, cannot_connect_now (a restart).
_POSTGRES_GONE = ("08", "57P01", "57P02", "57P03")


def is_sqlite(engine: Engine | Connection) -> bool:
    """True when the engine (or connection) talks to SQLite."""
    return engine.dialect.name == "sqlite"


def code_point_order(connection: Connection, column: Any) -> Any:
    """``column`` ordered by code point, as Python compares strings (PostgreSQL: "C" collation)."""
    return column.collate("C") if connection.dialect.name == "postgresql" else column


def normalise_url(url: str) -> str:
    """Plain ``postgresql://`` URLs use the psycopg 3 driver."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _configure_sqlite(engine: Engine, busy_timeout_seconds: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.execute("PRAGMA wal_autocheckpoint=8192")  # fewer, larger checkpoints
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the lock up front, so two processes never deadlock upgrading a read lock.
        immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine(
    url: str, *, busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS
) -> Engine:
    """An engine for ``url``; SQLite files get WAL mode and their directory created, and a
    writer waits up to ``busy_timeout_seconds`` for another process's write lock."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            # password and token hashes, the audit log: readable by the service's user only
            # (SQLite gives its -wal and -shm files the database file's permissions)
            os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
        # JSON columns are text on SQLite: read them with orjson (what ingestion parses with,
        # so nothing stored can be JSON it refuses), several times faster than the json module.
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_seconds},
            pool_size=8,
            json_deserializer=orjson.loads,
        )
        _configure_sqlite(engine, busy_timeout_seconds)
        return engine
    # No server-side prepared statements: a generic plan made while a table was small (an
    # empty sync_members, profiles on a new project) would scan it forever after; custom plans
    # see the table's current size.
    return sa.create_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"prepare_threshold": None},
    )


def outage_of(error: BaseException) -> DatabaseUnavailable | None:
    """The domain error for a driver error (wrapped by SQLAlchemy or raw, as bulk inserts on
    the driver's cursor raise them) that says the database cannot answer now: busy, full or
    disconnected; None for any other error (a defect, a constraint: raised as it is)."""
    original = error.orig if isinstance(error, sa.exc.DBAPIError) else error
    if isinstance(original, sqlite3.Error):
        primary = original.sqlite_errorcode & 0xFF
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return DatabaseBusy(
                "the database is locked by another writer and stayed locked past the busy "
                "timeout; nothing was stored: send the request again in a few seconds"
            )
        if primary == _SQLITE_FULL:
            return DatabaseFull(
                "the database's disk is full; nothing was stored: an operator must free space "
                "on the database's disk, then send the request again"
            )
        return None
    invalidated = isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated
    sqlstate = getattr(original, "sqlstate", None)
    # psycopg raises OperationalError without a SQLSTATE when the connection itself broke
    broken = isinstance(original, psycopg.OperationalError) and sqlstate is None
    if invalidated or broken or (sqlstate or "").startswith(_POSTGRES_GONE):
        return DatabaseUnavailable(
            "the connection to the database was lost (a restart or a network cut); the "
            "request did not complete: send it again in a few seconds"
        )
    return None


@contextmanager
def _outages() -> Iterator[None]:
    """Driver errors that mean "not now" raised as the domain's DatabaseUnavailable."""
    try:
        yield
    except (sa.exc.DBAPIError, sqlite3.Error, psycopg.Error) as error:
        outage = outage_of(error)
        if outage is None:
            raise
        raise outage from error


_sqlite_writers: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_writers_guard = threading.Lock()


def _writer_lock(engine: Engine) -> threading.Lock:
    with _writers_guard:
        lock = _sqlite_writers.get(engine)
        if lock is None:
            lock = _sqlite_writers[engine] = threading.Lock()
        return lock


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that intends to write: IMMEDIATE on SQLite, ordinary on PostgreSQL.

    SQLite has one writer at a time; threads of this process queue on a lock (woken at once)
    rather than on SQLite's busy timeout (which sleeps and polls). Other processes still wait
    on the busy timeout.
    """
    if is_sqlite(engine):
        with _writer_lock(engine), _outages(), engine.connect() as connection:
            connection.execution_options(**{_WRITE_OPTION: True})
            with connection.begin():
                yield connection
        return
    with _outages(), engine.connect() as connection, connection.begin():
        yield connection


def move_status(
    connection: Connection,
    table: sa.Table,
    row_id: int,
    new: str,
    allowed_from: tuple[str, ...],
    values: dict[str, Any],
) -> bool:
    """Set the row's ``status`` to ``new`` (with ``values``) only if its status is one of
    ``allowed_from``: one conditional UPDATE, atomic whichever worker asks; whether it moved."""
    moved = connection.execute(
        table.update()
        .where(table.c.id == row_id, table.c.status.in_(allowed_from))
        .values(status=new, **values)
    )
    return bool(moved.rowcount)


def ping(engine: Engine) -> None:
    """Ask the database to answer (readiness); an outage is a 503 saying which."""
    with _outages(), engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction (a consistent snapshot)."""
    with _outages(), engine.connect() as connection, connection.begin():
        yield connection


class RowBuffer:
    """Rows for one table, inserted a chunk at a time in transactions of their own (a plan or
    a run's report of a million rows without a million statements or one huge transaction)."""

    def __init__(self, engine: Engine, table: sa.Table, chunk: int = 5_000) -> None:
        self._engine = engine
        self._table = table
        self._chunk = chunk
        self._pending: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        """Queue one row; the chunk is stored once full."""
        self._pending.append(row)
        if len(self._pending) >= self._chunk:
            self.flush()

    def flush(self) -> None:
        """Store what is queued."""
        if self._pending:
            with write_transaction(self._engine) as connection:
                connection.execute(self._table.insert(), self._pending)
            self._pending = []
