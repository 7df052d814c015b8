"""Partner events in and MTU: webhook calls per second through a real server (one event a call,
as Iterable and Xtremepush send them, and CleverTap broadcasts of 1,000 profiles); the same one
event a call on PostgreSQL with one and two API processes (``serve --workers 1`` and ``2``) and
the ratio between them; and the time of the MTU report on the demo dataset (default 1 M users /
~10 M events) with partner outreach events added (one a third of the users, some opened).

The PostgreSQL rows need ``COHORTSYNC_BENCH_POSTGRES_URL`` (or ``COHORTSYNC_TEST_POSTGRES_URL``),
a server where a scratch database may be made; without it they say they were skipped.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import sqlalchemy as sa

from bench.cohorts import CACHE, _dataset
from bench.harness import Row, postgres_server, scratch_database
from bench.ingest import _serve
from cohortsync.clock import SystemClock
from cohortsync.ingest.partner_events import PartnerEventStore
from cohortsync.ingest.partners.base import PartnerEvent
from cohortsync.ingest.partners.registry import FORMATS
from cohortsync.keyring import Keyring, generate_key
from cohortsync.partners.clevertap.outreach import clevertap_campaign
from cohortsync.partners.iterable.outreach import iterable_webhook
from cohortsync.partners.xtremepush.outreach import xtremepush_webhook
from cohortsync.sandbox.fleet import start_sandbox
from cohortsync.sandbox.outreach import PartnerCaller
from cohortsync.services import mtu
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.integrations import IntegrationService
from cohortsync.services.projects import ProjectService
from cohortsync.storage.database import create_engine, read_transaction
from cohortsync.storage.migrate import upgrade
from cohortsync.storage.tables import events

SUITE = "partner events"
CLIENTS = 8
SEED_USERS = 20_000
BROADCAST = 1_000
SCALING_PARTNER = "iterable"


def _seed(url: str, keyring: Keyring) -> dict[str, str]:
    """Users with partner keys, and an integration of each partner; returns their secrets."""
    engine = create_engine(url)
    upgrade(engine)
    project, _ = ProjectService(engine, SystemClock()).ensure_default()
    ingestion = IngestionService(engine, SystemClock())
    for start in range(0, SEED_USERS, 2000):
        updates = [
            {
                "$token": project.token,
                "$distinct_id": f"user-{i}",
                "$set": {
                    "$email": f"user{i}@example.com",
                    "$iterable_user_id": f"it-{i}",
                    "$CleverTap_user_id": f"ct-{i}",
                },
            }
            for i in range(start, min(start + 2000, SEED_USERS))
        ]
        ingestion.engage(updates)
    ingestion.close()
    service = IntegrationService(
        engine, keyring, SystemClock(), allow_custom_endpoints=True, allow_private_endpoints=True
    )
    secrets: dict[str, str] = {}
    for partner in FORMATS:
        sandbox = start_sandbox(partner)
        try:
            connected = service.connect(
                project.id,
                partner,
                dict(sandbox.state.credentials),
                {"base_url": sandbox.server.url},
            )
        finally:
            sandbox.server.stop()
        assert connected.webhook_secret is not None
        secrets[partner] = f"{connected.id}:{connected.webhook_secret}"
    engine.dispose()
    return secrets


def _payloads(partner: str, count: int, first: int = 0) -> list[Any]:
    """``count`` calls' payloads; events numbered from ``first`` (a replay is stored once, so a
    second measurement on the same database starts past the first's numbers)."""
    at = datetime.now(UTC) - timedelta(minutes=5)
    numbers = range(first, first + count)
    if partner == "iterable":
        return [
            iterable_webhook(
                "emailSend",
                f"user{i % SEED_USERS}@example.com",
                at,
                user_id=f"it-{i % SEED_USERS}",
                message_id=f"{i:032x}",
            )
            for i in numbers
        ]
    if partner == "xtremepush":
        return [
            xtremepush_webhook("message_delivery", f"user-{i % SEED_USERS}", at, i) for i in numbers
        ]
    return [
        clevertap_campaign(i, [f"ct-{(i * BROADCAST + k) % SEED_USERS}" for k in range(BROADCAST)])
        for i in range(max(1, count // BROADCAST))
    ]


async def _post_all(caller: PartnerCaller, payloads: list[Any]) -> tuple[float, int]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for payload in payloads:
        queue.put_nowait(orjson.dumps(payload))
    failures = 0
    async with httpx.AsyncClient(timeout=120) as http:

        async def worker() -> None:
            nonlocal failures
            while not queue.empty():
                body = queue.get_nowait()
                reply = await http.post(caller.url, content=body, headers=caller.headers(body))
                failures += reply.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        return time.perf_counter() - started, failures


def _count_events(engine: sa.engine.Engine) -> int:
    with read_transaction(engine) as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(events)).scalar_one())


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def _serving(url: str, key: str, workers: int, **settings: str) -> Iterator[str]:
    """``cohortsync serve --workers N`` on ``url`` with the bench's key and ``settings``
    (COHORTSYNC_ names without the prefix) until the block ends; yields its base URL."""
    extra = {"COHORTSYNC_SECRET_KEY": key} | {
        f"COHORTSYNC_{name.upper()}": value for name, value in settings.items()
    }
    os.environ.update(extra)
    port = 19_000 + random.randrange(1000)
    server = _serve(url, port, workers)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base)
        yield base
    finally:
        server.terminate()
        server.wait()
        for name in extra:
            os.environ.pop(name, None)


@dataclass(frozen=True)
class Posted:
    """One measurement: events stored, in how many seconds, and the calls that failed."""

    stored: int
    seconds: float
    failures: int


def _post_counted(engine: sa.engine.Engine, caller: PartnerCaller, payloads: list[Any]) -> Posted:
    before = _count_events(engine)
    seconds, failures = asyncio.run(_post_all(caller, payloads))
    return Posted(_count_events(engine) - before, seconds, failures)


def _measure_partner(
    engine: sa.engine.Engine, caller: PartnerCaller, count: int, progress: Callable[[str], None]
) -> Row:
    payloads = _payloads(caller.partner, count)
    progress(f"posting {count:,} {caller.partner} events ({len(payloads):,} calls)")
    posted = _post_counted(engine, caller, payloads)
    shape = "one event a call"
    if caller.partner == "clevertap":
        shape = f"{BROADCAST:,}-profile broadcasts"
    metric = (
        f"webhook ingestion, {caller.partner} ({shape}, {CLIENTS} clients; "
        f"{posted.stored:,} stored, {posted.failures} failed calls)"
    )
    return Row(SUITE, metric, posted.stored / posted.seconds, "events/s")


def webhook_throughput(count: int, progress: Callable[[str], None]) -> list[Row]:
    """Events/s stored through ``POST /webhooks/{id}``, per partner, on the embedded default."""
    key = generate_key()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'webhooks.db'}"
        secrets = _seed(url, Keyring([key]))
        engine = create_engine(url)
        try:
            with _serving(url, key, 1) as base, httpx.Client() as client:
                for partner, token in secrets.items():
                    integration_id, secret = token.split(":", 1)
                    hook = f"{base}/webhooks/{integration_id}"
                    caller = PartnerCaller(hook, partner, secret, client)
                    rows.append(_measure_partner(engine, caller, count, progress))
        finally:
            engine.dispose()
    return rows


def webhook_scaling(
    count: int, repeats: int, progress: Callable[[str], None], server: str | None = None
) -> list[Row]:
    """Events/s of one-event webhook calls on PostgreSQL with one and with two API processes
    (the median of ``repeats`` rounds, each server warmed up first), and the ratio of the two."""
    if server is None:
        skipped = "webhooks on PostgreSQL, 1 and 2 API processes: skipped (set "
        skipped += "COHORTSYNC_BENCH_POSTGRES_URL or COHORTSYNC_TEST_POSTGRES_URL)"
        progress(skipped)
        return [Row(SUITE, skipped, 0, "")]
    key = generate_key()
    rounds: dict[int, list[Posted]] = {1: [], 2: []}
    first = 0  # every call a new event: a replay would be stored once
    with scratch_database(server) as url:
        integration_id, secret = _seed(url, Keyring([key]))[SCALING_PARTNER].split(":", 1)
        engine = create_engine(url)
        try:
            for _ in range(repeats):
                for workers, posted in rounds.items():
                    # API processes as production runs them: syncs are the workers' job.
                    with _serving(url, key, workers, scheduler="0") as base, httpx.Client() as http:
                        hook = f"{base}/webhooks/{integration_id}"
                        caller = PartnerCaller(hook, SCALING_PARTNER, secret, http)
                        warm_up = _payloads(SCALING_PARTNER, count // 10, first)
                        asyncio.run(_post_all(caller, warm_up))
                        first += len(warm_up)
                        progress(f"posting {count:,} events to serve --workers {workers}")
                        payloads = _payloads(SCALING_PARTNER, count, first)
                        posted.append(_post_counted(engine, caller, payloads))
                        first += count
        finally:
            engine.dispose()
    rows: list[Row] = []
    for workers, posted in rounds.items():
        metric = (
            f"webhook ingestion on PostgreSQL, serve --workers {workers}, {SCALING_PARTNER} "
            f"(one event a call, {CLIENTS} clients; median of {repeats} rounds of {count:,}: "
            f"{sum(p.stored for p in posted):,} stored, {sum(p.failures for p in posted)} "
            "failed calls)"
        )
        rate = statistics.median(p.stored / p.seconds for p in posted)
        rows.append(Row(SUITE, metric, rate, "events/s"))
    scaling = f"webhook scaling on PostgreSQL, 2 API processes / 1 ({SCALING_PARTNER})"
    return [*rows, Row(SUITE, scaling, rows[1].value / rows[0].value, "x")]


def _report_month(anchor: int) -> mtu.Month:
    """The last whole month before the dataset's anchor: a month full of product events."""
    return mtu.Month.of(datetime.fromtimestamp(anchor / 1000, UTC)).previous()


def _mtu_dataset(users: int, progress: Callable[[str], None]) -> tuple[Path, int]:
    """The cohort suite's dataset plus partner outreach events in the report month (cached)."""
    path = CACHE / f"mtu-last-month-{users}.db"
    marker = path.with_suffix(".anchor")
    if path.exists() and marker.exists():
        return path, int(marker.read_text())
    source, anchor = _dataset(users, progress)
    source_path = Path(str(source.url.database))
    source.dispose()
    progress(f"copying the {users:,}-user dataset for the MTU suite")
    shutil.copy(source_path, path)
    engine = create_engine(f"sqlite:///{path}")
    project, _ = ProjectService(engine, SystemClock()).ensure_default()
    store = PartnerEventStore(engine)
    month = _report_month(anchor)
    month_start, month_end = month.start_ms(), month.next().start_ms()
    rng = random.Random(7)
    batch: list[tuple[str, PartnerEvent]] = []
    added = 0
    for i in range(0, users, 3):
        at = datetime.fromtimestamp(rng.randrange(month_start, month_end) / 1000, UTC)
        kind = i % 9
        if kind in (0, 3):
            items = [
                iterable_webhook(
                    "emailSend", f"u{i}@example.com", at, user_id=f"it-{i}", message_id=f"{i:032x}"
                )
            ]
            if rng.random() < 0.2:
                items.append(
                    iterable_webhook(
                        "emailOpen",
                        f"u{i}@example.com",
                        at,
                        user_id=f"it-{i}",
                        message_id=f"{i:032x}",
                    )
                )
            partner = "iterable"
        elif kind == 6:
            items = [
                {
                    "event": "Notification Sent",
                    "properties": {"distinct_id": f"ct-{i}", "time": int(at.timestamp())},
                }
            ]
            partner = "clevertap"
        else:
            items = [xtremepush_webhook("message_delivery", f"user-{i}", at, i)]
            if rng.random() < 0.2:
                items.append(xtremepush_webhook("message_open", f"user-{i}", at, i))
            partner = "xtremepush"
        for parsed in FORMATS[partner].events(items):
            assert not isinstance(parsed, Exception)
            batch.append((FORMATS[partner].source, parsed))
        if len(batch) >= 5000:
            added += _flush(store, project.id, batch, anchor)
            batch = []
            progress(f"added {added:,} partner events")
    added += _flush(store, project.id, batch, anchor)
    engine.dispose()
    marker.write_text(str(anchor))
    return path, anchor


def _flush(
    store: PartnerEventStore, project_id: int, batch: list[tuple[str, PartnerEvent]], now: int
) -> int:
    total = 0
    for source in {s for s, _ in batch}:
        part = [(k, e) for k, (s, e) in enumerate(batch) if s == source]
        stored, failed = store.store(project_id, 0, source, part, now + 3_600_000)
        assert not failed, failed[:3]
        total += stored
    return total


def mtu_report_time(users: int, repeats: int, progress: Callable[[str], None]) -> list[Row]:
    """Seconds to compute one month's MTU report on the big dataset."""
    path, anchor = _mtu_dataset(users, progress)
    engine = create_engine(f"sqlite:///{path}")
    month = _report_month(anchor)
    times = []
    report: dict[str, Any] = {}
    for _ in range(repeats):
        started = time.perf_counter()
        report = mtu.MtuReports(engine).report(1, month).as_json()
        times.append(time.perf_counter() - started)
    with read_transaction(engine) as connection:
        total = connection.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
    engine.dispose()
    detail = (
        f"{users:,} users, {total:,} events; {month}: {report['events']:,} events, "
        f"MTU {report['mtu']:,}, {report['exempt_events']:,} exempt"
    )
    return [
        Row(
            SUITE,
            f"MTU report, SQLite ({detail}; median of {repeats})",
            statistics.median(times),
            "s",
        )
    ]


def run(
    users: int = 1_000_000,
    repeats: int = 3,
    webhook_events: int = 10_000,
    progress: Callable[[str], None] = print,
) -> list[Row]:
    """The partner events rows of the benchmark table."""
    return (
        webhook_throughput(webhook_events, progress)
        + webhook_scaling(webhook_events, repeats, progress, postgres_server())
        + mtu_report_time(users, repeats, progress)
    )


if __name__ == "__main__":  # pragma: no cover - the PostgreSQL rows alone, without the dataset
    from bench.harness import render

    print(render(webhook_scaling(10_000, 3, print, postgres_server())))
