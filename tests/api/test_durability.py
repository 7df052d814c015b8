"""Durability: SIGKILL the server while /import requests stream in; every acknowledged event is
stored after restart, and no event is stored twice (clients retry what was not acknowledged)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import psutil
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cohortsync.clock import SystemClock
from cohortsync.domain.accounts import Project
from cohortsync.services.projects import ProjectService
from cohortsync.storage.database import read_transaction
from cohortsync.storage.tables import events
from tests.conftest import free_port

KILLS = 5
BATCH = 250


def _start(database_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "COHORTSYNC_DATABASE_URL": database_url, "COHORTSYNC_LOG_LEVEL": "WARNING"}
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "cohortsync", "serve", "--port", str(port)],
        env=env,
        stdout=handle,
        stderr=handle,
    )


def _wait_ready(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("server did not come back")


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_event_and_duplicates_none(
    database_url: str, engine: Engine, project: Project, tmp_path: Path
) -> None:
    secret = ProjectService(engine, SystemClock()).rotate_api_secret(project.id)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    server = _start(database_url, port, log)
    _wait_ready(url, time.monotonic() + 30)

    acknowledged: set[str] = set()
    sent: set[str] = set()
    stop = threading.Event()
    rng = random.Random(1234)
    now_s = int(time.time())

    def client() -> None:
        batch_number = 0
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                ids = [f"b{batch_number}-{i}" for i in range(BATCH)]
                body = orjson.dumps(
                    [
                        {
                            "event": "Beat",
                            "properties": {
                                "distinct_id": f"u{i % 97}",
                                "time": now_s - i,
                                "$insert_id": ids[i],
                            },
                        }
                        for i in range(BATCH)
                    ]
                )
                while not stop.is_set():  # retry the same batch until acknowledged
                    sent.update(ids)
                    try:
                        response = http.post(
                            f"{url}/import", params={"strict": "1"}, content=body, auth=(secret, "")
                        )
                    except httpx.HTTPError:
                        time.sleep(0.05)
                        continue
                    if response.status_code == 200:
                        acknowledged.update(ids)
                        break
                    time.sleep(0.05)
                batch_number += 1

    workers = [threading.Thread(target=client) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.2))
            helpers = psutil.Process(server.pid).children(recursive=True)
            server.send_signal(signal.SIGKILL)
            server.wait()
            _, alive = psutil.wait_procs(helpers, timeout=5)
            assert not alive, "helper processes must exit with the killed server"
            server = _start(database_url, port, log)
            _wait_ready(url, time.monotonic() + 30)
        time.sleep(0.5)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        server.send_signal(signal.SIGKILL)
        server.wait()

    with read_transaction(engine) as connection:
        rows = connection.execute(
            sa.select(events.c.insert_id, sa.func.count()).group_by(events.c.insert_id)
        ).all()
    stored = {insert_id: count for insert_id, count in rows}
    assert len(acknowledged) >= BATCH * KILLS, "the test should have acknowledged real traffic"
    assert acknowledged <= set(stored), "an acknowledged event was lost"
    assert all(count == 1 for count in stored.values()), "an event was stored twice"
    assert set(stored) <= sent
