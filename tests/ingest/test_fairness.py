"""The ingestion thread's jobs, and the helper processes' turns, go round-robin by key, so a
project sending many requests at once waits its turn like any other (issue 15, finding 14); the
token buckets refill with the clock.

Driven step by step (a job that holds the thread until released; tasks queued one by one on an
event loop): no sleeping, no timing."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import pytest

from cohortsync.ingest.fair_turns import FairTurns
from cohortsync.ingest.fair_worker import FairWorker
from cohortsync.ingest.rate_limit import RateLimited, TokenBuckets

T = TypeVar("T")


def run(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``anyio.run`` in a thread of its own: a test before may leave an event loop running in
    this one (Playwright's sync API does)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, function, *args).result()


ARRIVALS = ["hog", "hog", "hog", "hog", "shop", "hog", "blog", "shop"]
# A FIFO queue (the single slot before) would run hog0-hog3, then shop4.
ROUND_ROBIN = ["hog0", "shop4", "blog6", "hog1", "shop7", "hog2", "hog3", "hog5"]


class Held:
    """A worker whose thread runs a job that holds it until :meth:`release`."""

    def __init__(self, worker: FairWorker) -> None:
        self.worker = worker
        self._started = threading.Event()
        self._gate = threading.Event()

        def hold() -> None:
            self._started.set()
            self._gate.wait()

        self.held = worker.submit("first", hold)
        assert self._started.wait(30)

    def release(self) -> None:
        """Let the held job end."""
        self._gate.set()


def test_the_ingestion_thread_runs_jobs_round_robin_by_key() -> None:
    held = Held(FairWorker())
    ran: list[str] = []

    def recorder(name: str) -> Callable[[], None]:
        return lambda: ran.append(name)

    jobs = [held.worker.submit(key, recorder(f"{key}{n}")) for n, key in enumerate(ARRIVALS)]
    assert held.worker.waiting == len(ARRIVALS)
    held.release()
    for job in jobs:
        job.result(30)
    assert ran == ROUND_ROBIN
    held.worker.close()


def test_the_thread_refuses_a_key_with_too_many_waiting_and_skips_withdrawn_jobs() -> None:
    held = Held(FairWorker(max_waiting_per_key=2))
    ran: list[str] = []
    kept = held.worker.submit("hog", lambda: ran.append("kept"))
    withdrawn = held.worker.submit("hog", lambda: ran.append("withdrawn"))
    with pytest.raises(RateLimited) as refused:
        held.worker.check("hog")
    assert refused.value.retry_after_seconds == 1
    held.worker.check("shop")  # another key still queues
    assert withdrawn.cancel()  # the client went away before its turn
    failing = held.worker.submit("shop", lambda: 1 / 0)
    held.release()
    kept.result(30)
    assert isinstance(failing.exception(30), ZeroDivisionError)  # raised to its caller
    assert ran == ["kept"]
    held.worker.check("hog")
    assert run(held.worker.run, "hog", lambda: 42) == 42  # awaited from an event loop
    held.worker.close()


async def _served_order(turns: FairTurns[str], arrivals: list[str]) -> list[str]:
    """The order in which ``arrivals`` (keys, queued in this order behind a held turn) get
    theirs."""
    served: list[str] = []
    release = anyio.Event()

    async def hold() -> None:
        async with turns.turn("first"):
            await release.wait()

    async def ask(key: str, number: int) -> None:
        async with turns.turn(key):
            served.append(f"{key}{number}")
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as group:
        group.start_soon(hold)
        await anyio.wait_all_tasks_blocked()
        for number, key in enumerate(arrivals):
            group.start_soon(ask, key, number)
            await anyio.wait_all_tasks_blocked()  # each queued before the next arrives
        assert turns.waiting == len(arrivals)
        release.set()
    return served


def test_helper_turns_go_round_robin_by_key() -> None:
    assert run(_served_order, FairTurns[str](1), ARRIVALS) == ROUND_ROBIN


def test_a_cancelled_waiter_gives_its_place_up() -> None:
    async def scenario() -> list[str]:
        turns = FairTurns[str](1)
        served: list[str] = []
        release = anyio.Event()

        async def hold() -> None:
            async with turns.turn("first"):
                await release.wait()

        async def ask(key: str) -> None:
            async with turns.turn(key):
                served.append(key)

        async with anyio.create_task_group() as group:
            group.start_soon(hold)
            await anyio.wait_all_tasks_blocked()
            async with anyio.create_task_group() as leaving:  # a client that went away
                leaving.start_soon(ask, "leaves")
                await anyio.wait_all_tasks_blocked()
                assert turns.waiting == 1
                leaving.cancel_scope.cancel()
            assert turns.waiting == 0
            group.start_soon(ask, "stays")
            await anyio.wait_all_tasks_blocked()
            release.set()
        return served

    assert run(scenario) == ["stays"]


def test_buckets_refill_at_the_rate_up_to_the_burst_and_take_all_or_nothing() -> None:
    now = [0.0]
    buckets = TokenBuckets[str](rate=2, burst=10, timer=lambda: now[0])
    assert buckets.take({"a": 8}) == 0
    assert buckets.take({"a": 3, "b": 1}) == pytest.approx(0.5)  # a lacks 1 token: 0.5 s
    assert buckets.take({"b": 10}) == 0  # b untouched by the refusal above
    now[0] += 0.5
    assert buckets.wait("a", 3) == 0
    assert buckets.take({"a": 3}) == 0
    now[0] += 3600
    assert buckets.take({"a": 11}) == 0  # more than the burst needs a full bucket, no more
    assert buckets.wait("a") == pytest.approx(0.5)
    assert TokenBuckets[str](rate=0, burst=1, timer=lambda: now[0]).take({"a": 10**9}) == 0
