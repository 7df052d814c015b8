"""Shared fixtures: real SQLite and PostgreSQL databases, a frozen clock, a live server."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from starlette.applications import Starlette

from cohortsync.app import create_app
from cohortsync.clock import FrozenClock, SystemClock
from cohortsync.domain.accounts import Project
from cohortsync.keyring import generate_key
from cohortsync.partners.registry import seeded_exemptions
from cohortsync.sandbox.fleet import EMULATORS, RunningSandbox, start_sandbox
from cohortsync.sandbox.server import start
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.projects import ProjectService
from cohortsync.settings import Settings
from cohortsync.storage.database import create_engine
from cohortsync.storage.migrate import upgrade
from cohortsync.storage.tables import metadata, mtu_exemptions
from tests.helpers import TEST_PASSWORD_COST

# Every Settings the tests build (and every `cohortsync` process they start) hashes passwords
# at the test cost, not the default's 128 MiB and ~0.4 s a hash.
os.environ.setdefault("COHORTSYNC_PASSWORD_HASH_COST", str(TEST_PASSWORD_COST))
POSTGRES_ENV = "COHORTSYNC_TEST_POSTGRES_URL"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
TEST_KEY = generate_key()


def postgres_url() -> str | None:
    """The admin URL of the test PostgreSQL server, if configured."""
    return os.environ.get(POSTGRES_ENV)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is faster)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated once."""
    admin_url = postgres_url()
    if admin_url is None:
        pytest.skip(f"PostgreSQL tests skipped: set {POSTGRES_ENV} (CI sets it)")
    name = f"cohortsync_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(create_engine(admin_url).url).set(database=name)
    engine = create_engine(url.render_as_string(hide_password=False))
    upgrade(engine)
    engine.dispose()
    yield url.render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _truncate_postgres(engine: Engine) -> None:
    """Empty every table (the job queue's too), then put back the data migrations seed (the
    MTU exemption list)."""
    queue = ("procrastinate_jobs", "procrastinate_periodic_defers", "procrastinate_workers")
    names = ", ".join([f'"{t.name}"' for t in metadata.sorted_tables] + list(queue))
    with engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        connection.execute(mtu_exemptions.insert(), [e._asdict() for e in seeded_exemptions()])


# The engines a database fixture is parametrized over: SQLite always, PostgreSQL where configured.
ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def empty_database_url(request: pytest.FixtureRequest, directory: Path) -> str:
    """A migrated, empty database of the engine ``request.param`` names: a copy of the SQLite
    template in ``directory``, or the session's PostgreSQL database, emptied."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = directory / "cohortsync.db"
        shutil.copy(template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("postgres_database")
    engine = create_engine(url)
    _truncate_postgres(engine)
    engine.dispose()
    return url


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database URL: SQLite always; PostgreSQL where configured."""
    return empty_database_url(request, tmp_path)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the test database."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path, sqlite_template: Path) -> Iterator[Engine]:
    """An engine on a fresh SQLite database only (for SQLite-specific tests)."""
    target = tmp_path / "only-sqlite.db"
    shutil.copy(sqlite_template, target)
    engine = create_engine(f"sqlite:///{target}")
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    """A clock frozen at NOW."""
    return FrozenClock(NOW)


@pytest.fixture
def project(engine: Engine) -> Project:
    """The default project of the test database."""
    found, _ = ProjectService(engine, SystemClock()).ensure_default()
    return found


@pytest.fixture
def service(engine: Engine, clock: FrozenClock) -> IngestionService:
    """The ingestion service over the test database."""
    return IngestionService(engine, clock)


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """A real HTTP server on loopback serving the app."""

    url: str
    engine: Engine
    clock: FrozenClock

    def client(self, **kwargs: object) -> httpx.Client:
        """An HTTP client for this server."""
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on a free loopback port (lifespan off: no
    scheduler ticks) until the block ends, then its background work stopped; yields its base
    URL."""
    server = start(app)
    try:
        yield server.url
    finally:
        server.stop()
        state = getattr(app.state, "cohortsync", None)
        if state is not None:  # a PostgreSQL sync worker started by a run, the parse pool
            state.close()


@pytest.fixture
def live_server(engine: Engine, database_url: str) -> Iterator[LiveServer]:
    """uvicorn in a thread, on a free loopback port, with a clock frozen at the real time."""
    settings = Settings(
        database_url=database_url,
        secret_key=SecretStr(TEST_KEY),
        allow_custom_endpoints=True,
        allow_private_endpoints=True,  # the partner emulators listen on loopback
    )
    clock = FrozenClock(SystemClock().now())
    with serving(create_app(settings, engine=engine, clock=clock)) as url:
        yield LiveServer(url, engine, clock)


@pytest.fixture
def fresh_engine(
    database_url: str, tmp_path: Path, sqlite_template: Path
) -> Iterator[Callable[[], Engine]]:
    """Empty, migrated databases of the parametrized kind, one per call (hypothesis examples)."""
    engines: list[Engine] = []

    def make() -> Engine:
        if database_url.startswith("sqlite"):
            for previous in engines:
                previous.dispose()
            target = tmp_path / f"example-{len(engines)}.db"
            shutil.copy(sqlite_template, target)
            engines.append(create_engine(f"sqlite:///{target}"))
        elif not engines:
            engines.append(create_engine(database_url))
        engine = engines[-1]
        if not database_url.startswith("sqlite"):
            _truncate_postgres(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture(scope="session")
def sandbox_fleet() -> Iterator[dict[str, RunningSandbox]]:
    """Every partner emulator on a loopback port, started once for the whole session."""
    running = {partner: start_sandbox(partner) for partner in sorted(EMULATORS)}
    yield running
    for sandbox in running.values():
        sandbox.server.stop()


@pytest.fixture
def sandboxes(sandbox_fleet: dict[str, RunningSandbox]) -> dict[str, RunningSandbox]:
    """The emulators, emptied of lists and faults left by earlier tests."""
    for sandbox in sandbox_fleet.values():
        sandbox.state.reset()
    return sandbox_fleet
