"""The benchmark table: each suite returns rows of (metric, value, unit, target, verdict)."""

from __future__ import annotations

import os
import platform
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
import sqlalchemy as sa

from cohortsync.storage.database import create_engine


@dataclass(frozen=True)
class Row:
    """One measured figure and the target it is held to (if any)."""

    suite: str
    metric: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None

    def cells(self) -> list[str]:
        """The row as table cells."""
        verdict = {True: "met", False: "MISSED", None: ""}[self.met]
        shown = f"{self.value:,.0f}" if abs(self.value) >= 100 else f"{self.value:,.2f}"
        return [self.suite, self.metric, f"{shown} {self.unit}", self.target, verdict]


def render(rows: list[Row]) -> str:
    """A Markdown table of ``rows`` with a line saying where they were measured."""
    header = ["suite", "metric", "value", "target", "verdict"]
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_results(text: str, path: Path) -> None:
    """Keep the latest table next to the benchmarks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def postgres_server() -> str | None:
    """The PostgreSQL server the bench may make a scratch database on, if one is named."""
    return os.environ.get("COHORTSYNC_BENCH_POSTGRES_URL") or os.environ.get(
        "COHORTSYNC_TEST_POSTGRES_URL"
    )


@contextmanager
def scratch_database(server: str) -> Iterator[str]:
    """A new, empty database on ``server`` for the block, dropped after it; yields its URL."""
    admin = create_engine(server).execution_options(isolation_level="AUTOCOMMIT")
    name = f"cohortsync_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
