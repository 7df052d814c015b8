"""What the load runs against: a fresh database (SQLite, or a new PostgreSQL database) seeded
with two projects, an admin and a 100 k-member cohort, and ``cohortsync serve`` in a child
process on a free loopback port, allowed to reach the partner emulators on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa

from cohortsync.clock import SystemClock
from cohortsync.domain.accounts import Role
from cohortsync.keyring import generate_key
from cohortsync.services.accounts import AccountService
from cohortsync.services.cohorts import CohortService
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.projects import ProjectService
from cohortsync.settings import Settings
from cohortsync.storage.database import create_engine
from cohortsync.storage.migrate import upgrade

ADMIN = "load-admin@example.com"
PROFILE_CHUNK = 2_000
COHORT = {"property": "plan", "op": "equals", "value": "pro"}
# The per-token (a token is a project) ingestion limit, named in one place: the Settings
# fields of its records a second and its burst.
RATE_SETTING = "ingest_rate_per_second"
BURST_SETTING = "ingest_burst"


def variable(setting: str) -> str:
    """The environment variable of a setting."""
    return f"COHORTSYNC_{setting.upper()}"


def rate_limit_exists() -> bool:
    """Whether this build has the per-token ingestion limit at all."""
    return RATE_SETTING in Settings.model_fields


@dataclass(frozen=True)
class Seeded:
    """What the load needs to know about the seeded database."""

    flood_project: int
    flood_token: str
    polite_project: int
    polite_token: str
    bearer: str
    cohort_id: int
    members: int


def seed(url: str, members: int) -> Seeded:
    """Migrate, then two projects, an admin of both with a bearer token, ``members`` profiles
    on ``plan = pro`` and the cohort that selects them."""
    engine = create_engine(url)
    try:
        upgrade(engine)
        clock = SystemClock()
        projects = ProjectService(engine, clock)
        flood, _ = projects.ensure_default()
        polite = projects.create("polite neighbour")
        accounts = AccountService(engine, clock, password_cost=12)
        for project in (flood, polite):
            accounts.create_user(ADMIN, "a long load-test password", Role.ADMIN, project.id)
        bearer = accounts.create_token(ADMIN, "load", days=1)
        ingestion = IngestionService(engine, clock)
        for start in range(0, members, PROFILE_CHUNK):
            result = ingestion.engage(
                [
                    {
                        "$token": flood.token,
                        "$distinct_id": f"m{i:07d}",
                        "$set": {"$email": f"m{i:07d}@example.com", "plan": "pro"},
                    }
                    for i in range(start, min(start + PROFILE_CHUNK, members))
                ]
            )
            if result.failed:
                raise RuntimeError(f"seeding profiles failed: {result.failed[:3]}")
        cohort = CohortService(engine, clock).create(flood.id, "pro users", COHORT)
    finally:
        engine.dispose()
    return Seeded(flood.id, flood.token, polite.id, polite.token, bearer, cohort.id, members)


@contextmanager
def fresh_database(kind: str, work: Path, postgres_url: str | None) -> Iterator[str]:
    """The URL of an empty database: a new SQLite file, or a new PostgreSQL database on the
    server of ``postgres_url`` (dropped afterwards)."""
    if kind == "sqlite":
        path = work / "load.db"
        for leftover in work.glob("load.db*"):
            leftover.unlink()
        yield f"sqlite:///{path}"
        return
    assert postgres_url is not None
    name = f"cohortsync_load_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(create_engine(postgres_url).url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """``cohortsync serve`` in a child process."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def serving(database_url: str, work: Path, rate_per_second: int, burst: int) -> Iterator[Server]:
    """Serve ``database_url`` until the block ends, with the scheduler polling every second,
    loopback partner URLs allowed and the per-token ingestion limit at ``rate_per_second``
    records a second, ``burst`` at once."""
    port = free_port()
    env = {
        **os.environ,
        "COHORTSYNC_DATABASE_URL": database_url,
        "COHORTSYNC_SECRET_KEY": generate_key(),
        "COHORTSYNC_ALLOW_PRIVATE_ENDPOINTS": "1",
        "COHORTSYNC_ALLOW_CUSTOM_ENDPOINTS": "1",
        "COHORTSYNC_SCHEDULER_POLL_SECONDS": "1",
        "COHORTSYNC_LOG_LEVEL": "WARNING",
        variable(RATE_SETTING): str(rate_per_second),
        variable(BURST_SETTING): str(burst),
    }
    log = work / "server.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "cohortsync", "serve", "--port", str(port)],
            env=env,
            stdout=handle,
            stderr=handle,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_ready(server, time.monotonic() + 60)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: Server, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited; see {server.log}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer /readyz; see {server.log}")
