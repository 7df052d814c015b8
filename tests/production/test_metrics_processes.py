"""Several API processes (``cohortsync serve --workers 2``) tell the truth at ``/metrics``: each
scrape, whichever process answers it, adds up the counters of every process (prometheus_client
multiprocess mode), and ``serve`` prepares the directory they share."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from cohortsync.clock import SystemClock
from cohortsync.metrics import SHARED_DIRECTORY_ENV, shared_across_processes
from cohortsync.services.projects import ProjectService
from tests.conftest import free_port

INGESTED = "cohortsync_records_ingested_total"
AT_LEAST = 120  # /track calls; more are sent until both processes have counted some
AT_MOST = 2_000
SCRAPES = 8


def _start(database_url: str, port: int, metrics: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "COHORTSYNC_DATABASE_URL": database_url,
        "COHORTSYNC_LOG_LEVEL": "WARNING",
        "COHORTSYNC_SCHEDULER": "0",
        "COHORTSYNC_METRICS_DIR": str(metrics),
    }
    env.pop(SHARED_DIRECTORY_ENV, None)
    handle = log.open("ab")
    command = ["serve", "--workers", "2", "--port", str(port)]
    return subprocess.Popen(
        [sys.executable, "-m", "cohortsync", *command], env=env, stdout=handle, stderr=handle
    )


@pytest.fixture
def two_processes(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``serve --workers 2`` on the test database; yields its URL and its metrics directory."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    metrics, log = tmp_path / "metrics", tmp_path / "server.log"
    server = _start(database_url, port, metrics, log)
    try:
        deadline = time.monotonic() + 60
        while not _ready(url):
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server did not start:\n" + log.read_text()
            time.sleep(0.1)
        yield url, metrics
    finally:
        helpers = []
        with contextlib.suppress(psutil.NoSuchProcess):
            helpers = psutil.Process(server.pid).children(recursive=True)
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        psutil.wait_procs(helpers, timeout=10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _track(url: str, token: str, number: int) -> None:
    """One event through /track, on a connection of its own (so either process may take it)."""
    record = {
        "event": "Signed Up",
        "properties": {
            "token": token,
            "distinct_id": f"user-{number}",
            "time": int(time.time() * 1000),
            "$insert_id": f"metrics-{number}",
        },
    }
    reply = httpx.post(f"{url}/track", params={"verbose": "1"}, json=[record], timeout=30)
    assert reply.status_code == 200 and reply.json()["status"] == 1, reply.text


def _ingested(url: str) -> float:
    """``cohortsync_records_ingested_total`` of one scrape (a new connection), all endpoints."""
    reply = httpx.get(f"{url}/metrics", timeout=30)
    assert reply.status_code == 200, reply.text
    return sum(
        sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
        if sample.name == INGESTED
    )


def _counting_processes(metrics: Path) -> int:
    return len(list(metrics.glob("counter_*.db")))


@pytest.mark.slow
def test_every_scrape_counts_the_records_of_both_processes(
    two_processes: tuple[str, Path], engine: Engine
) -> None:
    url, metrics = two_processes
    token = ProjectService(engine, SystemClock()).ensure_default()[0].token
    sent = 0
    while sent < AT_LEAST or (_counting_processes(metrics) < 2 and sent < AT_MOST):
        _track(url, token, sent)
        sent += 1

    scraped = [_ingested(url) for _ in range(SCRAPES)]

    # Counted per process, a scrape would show the share of the one that answered (about half).
    assert scraped == [sent] * SCRAPES
    assert _counting_processes(metrics) == 2, "both processes should have taken /track calls"


def test_several_processes_share_a_directory_serve_empties(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SHARED_DIRECTORY_ENV, raising=False)
    configured = tmp_path / "metrics"
    configured.mkdir()
    for name in ("counter_41.db", "gauge_livesum_41.db", "cohortsync.db", "notes.txt"):
        (configured / name).write_text("left by an earlier run")

    with shared_across_processes(str(configured), 2) as directory:
        assert directory == configured
        assert os.environ[SHARED_DIRECTORY_ENV] == str(configured)
        # Only prometheus_client's own files go: a database put there by mistake stays.
        assert sorted(p.name for p in configured.iterdir()) == ["cohortsync.db", "notes.txt"]
    assert SHARED_DIRECTORY_ENV not in os.environ
    assert configured.is_dir(), "a directory the operator named is kept"

    with shared_across_processes("", 2) as temporary:
        assert temporary is not None and temporary.is_dir()
        assert os.environ[SHARED_DIRECTORY_ENV] == str(temporary)
    assert not temporary.exists(), "a temporary directory serve made is removed"
    assert SHARED_DIRECTORY_ENV not in os.environ

    with shared_across_processes(str(configured), 1) as single:
        assert single is None and SHARED_DIRECTORY_ENV not in os.environ


def test_the_operators_directory_wins_and_is_only_emptied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator, configured = tmp_path / "operator", tmp_path / "configured"
    operator.mkdir()
    (operator / "counter_7.db").write_text("left by an earlier run")
    monkeypatch.setenv(SHARED_DIRECTORY_ENV, str(operator))

    for processes in (1, 2):
        with shared_across_processes(str(configured), processes) as directory:
            assert directory == operator
            assert list(operator.iterdir()) == []
        assert os.environ[SHARED_DIRECTORY_ENV] == str(operator)
        assert operator.is_dir() and not configured.exists()


def test_sqlite_refuses_more_than_two_processes(sqlite_template: Path, tmp_path: Path) -> None:
    database = tmp_path / "cohortsync.db"
    database.write_bytes(sqlite_template.read_bytes())
    env = {**os.environ, "COHORTSYNC_DATABASE_URL": f"sqlite:///{database}", "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "cohortsync", "serve", "--workers", "3", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "SQLite serves at most 2 HTTP processes" in result.stderr
