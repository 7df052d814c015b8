"""The load of ``make load``, for locust (headless, started by ``python -m bench.load``).

Three kinds of client against one server:

- ``Flood``: SDKs of one project sending /track batches as fast as replies come, far beyond the
  per-token rate limit; every reply must be 200 or 429 (never a timeout or a 5xx).
- ``Polite``: one SDK of another project sending a small batch a second, under any limit.
- ``Reader``: admins reading the API (cohorts, syncs, a sync's runs) while a sync runs.

Each acknowledged event's ``$insert_id``, and the time and latency of each API read, are written
to files in ``$COHORTSYNC_LOAD_OUT`` when locust stops; the driver checks them against the
server.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import orjson
from locust import HttpUser, constant, events, task

FLOOD_BATCH = 20  # events a flood request
POLITE_BATCH = 5
TIMEOUT_SECONDS = 10.0  # a reply slower than this counts as a timeout
JSON = {"Content-Type": "application/json"}

FLOOD_TOKEN = os.environ.get("COHORTSYNC_LOAD_FLOOD_TOKEN", "")
POLITE_TOKEN = os.environ.get("COHORTSYNC_LOAD_POLITE_TOKEN", "")
BEARER = os.environ.get("COHORTSYNC_LOAD_BEARER", "")
PROJECT = os.environ.get("COHORTSYNC_LOAD_PROJECT", "1")
OUT = Path(os.environ.get("COHORTSYNC_LOAD_OUT", "."))

_ids = itertools.count()
acknowledged: dict[str, list[str]] = {"flood": [], "polite": []}
replies: dict[str, dict[str, int]] = {"flood": {}, "polite": {}}
retry_after_missing = [0]
reads: list[tuple[float, str, float, int]] = []  # (wall time, name, milliseconds, status)


def _batch(token: str, kind: str, size: int) -> tuple[bytes, list[str]]:
    now = int(time.time())
    ids = [f"{kind}-{os.getpid()}-{next(_ids)}" for _ in range(size)]
    body = [
        {
            "event": "Played",
            "properties": {
                "token": token,
                "distinct_id": f"{kind}-user-{n % 50}",
                "time": now,
                "$insert_id": insert_id,
                "level": n % 7,
            },
        }
        for n, insert_id in enumerate(ids)
    ]
    return orjson.dumps(body), ids


def _send(user: HttpUser, kind: str, token: str, size: int) -> None:
    """One /track batch; remember what was acknowledged and how each reply went."""
    body, ids = _batch(token, kind, size)
    with user.client.post(
        "/track?verbose=1",
        data=body,
        headers=JSON,
        name=f"/track ({kind})",
        timeout=TIMEOUT_SECONDS,
        catch_response=True,
    ) as response:
        status = response.status_code  # 0: no reply (a timeout, a reset)
        counts = replies[kind]
        counts[str(status)] = counts.get(str(status), 0) + 1
        if status == 200:
            acknowledged[kind].extend(ids)
            response.success()
        elif status == 429:
            if "retry-after" not in response.headers:
                retry_after_missing[0] += 1
            response.success()  # expected: the limit at work
        else:
            response.failure(f"{status}: {response.text[:200]}")


class Flood(HttpUser):
    """A client far beyond the per-token limit: no wait between requests."""

    fixed_count = 4
    wait_time = constant(0)

    @task
    def track(self) -> None:
        """A batch of events on the flooded token."""
        _send(self, "flood", FLOOD_TOKEN, FLOOD_BATCH)


class Polite(HttpUser):
    """A client of another project well under any limit: a small batch a second."""

    fixed_count = 1
    wait_time = constant(1)

    @task
    def track(self) -> None:
        """A batch of events on the polite token."""
        _send(self, "polite", POLITE_TOKEN, POLITE_BATCH)


class Reader(HttpUser):
    """An admin reading the API: cohorts, syncs, and the runs of the first sync."""

    fixed_count = 3
    wait_time = constant(0.2)

    def _get(self, path: str, name: str) -> Any:
        started = time.time()
        with self.client.get(
            path,
            headers={"Authorization": f"Bearer {BEARER}"},
            name=name,
            timeout=TIMEOUT_SECONDS,
            catch_response=True,
        ) as response:
            took = (time.time() - started) * 1000
            reads.append((started, name, took, response.status_code))
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return None
            response.success()
            return response.json()

    @task
    def read(self) -> None:
        """The three reads of the Syncs page."""
        base = f"/api/v1/projects/{PROJECT}"
        self._get(f"{base}/cohorts", "GET cohorts")
        syncs = self._get(f"{base}/syncs", "GET syncs")
        if syncs:
            self._get(f"{base}/syncs/{syncs[0]['id']}/runs", "GET runs")


def _write_results(**_kwargs: Any) -> None:
    """Hand the driver what the clients saw."""
    OUT.mkdir(parents=True, exist_ok=True)
    for kind, ids in acknowledged.items():
        (OUT / f"acknowledged-{kind}.txt").write_text("\n".join(ids))
    summary = {"replies": replies, "retry_after_missing": retry_after_missing[0]}
    (OUT / "replies.json").write_text(json.dumps(summary))
    (OUT / "reads.json").write_text(json.dumps(reads))


events.quitting.add_listener(_write_results)  # type: ignore[no-untyped-call]
