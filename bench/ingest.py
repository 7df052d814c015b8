"""Ingestion throughput: /import over HTTP (2,000-event gzip batches, concurrent clients) into
the embedded default (SQLite), against the raw insert ceiling of the same rows, and peak memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

from bench.harness import Row
from cohortsync.clock import SystemClock, now_ms
from cohortsync.domain.events import parse_event
from cohortsync.services.projects import ProjectService
from cohortsync.storage.database import create_engine, write_transaction
from cohortsync.storage.migrate import upgrade
from cohortsync.warehouse.events import event_rows, insert_rows

BATCH = 2000
CLIENTS = 8
SUITE = "ingest"


def make_events(count: int, seed: int = 1) -> list[dict[str, Any]]:
    """Realistic events: ~10 properties, a few hundred bytes each, unique $insert_ids."""
    rng = random.Random(seed)
    base = int(time.time()) - 30 * 86400
    names = ["App Open", "Page View", "Search", "Add to Cart", "Purchase", "Share"]
    out = []
    for i in range(count):
        user = rng.randrange(count // 10 + 1)
        out.append(
            {
                "event": rng.choice(names),
                "properties": {
                    "distinct_id": f"user-{user}",
                    "time": base + i // 20,
                    "$insert_id": f"bench-{seed}-{i:x}",
                    "$device_id": f"dev-{user:x}",
                    "$user_id": f"user-{user}",
                    "$os": rng.choice(["iOS", "Android", "Windows", "macOS"]),
                    "$browser": rng.choice(["Chrome", "Safari", "Firefox"]),
                    "path": rng.choice(["/", "/pricing", "/docs", "/cart"]),
                    "amount": round(rng.uniform(1, 200), 2),
                    "plan": rng.choice(["free", "pro", "enterprise"]),
                    "campaign": f"c{rng.randrange(40)}",
                    "items": rng.randrange(1, 6),
                },
            }
        )
    return out


def _prepare_database(directory: Path) -> tuple[str, str]:
    url = f"sqlite:///{directory / 'bench.db'}"
    engine = create_engine(url)
    upgrade(engine)
    project, _ = ProjectService(engine, SystemClock()).ensure_default()
    secret = ProjectService(engine, SystemClock()).rotate_api_secret(project.id)
    engine.dispose()
    return url, secret


def _client(url: str, secret: str, bodies: list[bytes], result: Any) -> None:
    async def run() -> None:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for body in bodies:
            queue.put_nowait(body)
        failures = 0
        async with httpx.AsyncClient(timeout=120, auth=(secret, "")) as http:

            async def worker() -> None:
                nonlocal failures
                while not queue.empty():
                    body = queue.get_nowait()
                    response = await http.post(
                        f"{url}/import",
                        params={"strict": "1"},
                        content=body,
                        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
                    )
                    if response.status_code != 200:
                        failures += 1

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CLIENTS)))
            result["seconds"] = time.perf_counter() - started
            result["failures"] = failures

    asyncio.run(run())


def _serve(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "COHORTSYNC_DATABASE_URL": url, "COHORTSYNC_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "cohortsync", "serve", "--port", str(port)]
    command += ["--workers", str(workers)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += member.memory_info().rss
    return total


def http_throughput(events: list[dict[str, Any]], workers: int = 1) -> dict[str, float]:
    """Events/s through a real server process, and its peak RSS by half time and at the end."""
    bodies = [
        gzip.compress(orjson.dumps(events[i : i + BATCH]), 1) for i in range(0, len(events), BATCH)
    ]
    with tempfile.TemporaryDirectory() as directory:
        url, secret = _prepare_database(Path(directory))
        port = 18_000 + random.randrange(1000)
        server = _serve(url, port, workers)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        monitor = psutil.Process(server.pid)
        peaks: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peaks.append(_tree_rss(monitor))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        manager = multiprocessing.Manager()
        result = manager.dict()
        client = multiprocessing.Process(target=_client, args=(base, secret, bodies, result))
        client.start()
        client.join()
        stop.set()
        sampler.join()
        server.terminate()
        server.wait()
        seconds = float(result["seconds"])
        half = max(peaks[: max(1, len(peaks) // 2)])
        return {
            "events_per_second": len(events) / seconds,
            "failures": float(result["failures"]),
            "rss_half_mb": half / 2**20,
            "rss_peak_mb": max(peaks) / 2**20,
        }


def raw_ceiling(events: list[dict[str, Any]]) -> float:
    """Rows/s inserting the same prepared rows straight into the same kind of database."""
    now = now_ms(SystemClock())
    parsed = [parse_event(e, now_ms=now, oldest_ms=0) for e in events]
    with tempfile.TemporaryDirectory() as directory:
        url, _ = _prepare_database(Path(directory))
        engine = create_engine(url)
        batches = [event_rows(1, parsed[i : i + BATCH]) for i in range(0, len(parsed), BATCH)]
        started = time.perf_counter()
        for rows in batches:
            with write_transaction(engine) as connection:
                insert_rows(connection, rows)
        seconds = time.perf_counter() - started
        engine.dispose()
    return len(events) / seconds


def _cpu_steal_share(before: list[int], after: list[int]) -> float:
    """Share of CPU time the hypervisor took away (steal) between two /proc/stat readings."""
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta)
    return delta[7] / total if total and len(delta) > 7 else 0.0


def _proc_stat() -> list[int]:
    try:
        with open("/proc/stat") as handle:
            return [int(x) for x in handle.readline().split()[1:]]
    except OSError:
        return []


def run(events_count: int = 400_000, repeats: int = 3) -> list[Row]:
    """The ingestion rows of the benchmark table (medians of ``repeats`` runs)."""
    events = make_events(events_count)
    before = _proc_stat()
    runs = [http_throughput(events) for _ in range(repeats)]
    steal = _cpu_steal_share(before, _proc_stat()) if before else 0.0
    ceilings = sorted(raw_ceiling(events) for _ in range(repeats))
    rates = sorted(r["events_per_second"] for r in runs)
    rate, ceiling = statistics.median(rates), statistics.median(ceilings)
    ratio = rate / ceiling
    worst_growth = max(r["rss_peak_mb"] - r["rss_half_mb"] for r in runs)
    peak = max(r["rss_peak_mb"] for r in runs)
    failures = sum(r["failures"] for r in runs)
    spread = f"median of {repeats}, range {rates[0]:,.0f}-{rates[-1]:,.0f}"
    return [
        Row(
            SUITE,
            f"/import over HTTP, {events_count:,} events, {CLIENTS} clients ({spread})",
            rate,
            "events/s",
            ">= 30,000",
            rate >= 30_000 and failures == 0,
        ),
        Row(SUITE, "raw insert ceiling, same rows, same database (median)", ceiling, "rows/s"),
        Row(SUITE, "end to end / raw ceiling", ratio * 100, "%", ">= 50 %", ratio >= 0.5),
        Row(SUITE, "server peak RSS (API process and its helper)", peak, "MB"),
        Row(
            SUITE,
            "RSS growth over the second half of the events (worst run)",
            worst_growth,
            "MB",
            "flat (< 25 MB)",
            worst_growth < 25,
        ),
        Row(SUITE, "CPU stolen by the hypervisor during the HTTP runs", steal * 100, "%"),
    ]
