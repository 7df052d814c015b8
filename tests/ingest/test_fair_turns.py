"""The ingestion writer's turns go round-robin by project, so one sending many requests at once
waits its turn like any other (issue 15, finding 14); the token buckets refill with the clock.

Driven step by step on one event loop: no sleeping, no timing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import pytest

from cohortsync.ingest.fair_turns import FairTurns
from cohortsync.ingest.rate_limit import RateLimited, TokenBuckets

T = TypeVar("T")


def run(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``anyio.run`` in a thread of its own: a test before may leave an event loop running in
    this one (Playwright's sync API does)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, function, *args).result()


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


def test_a_project_with_many_waiting_requests_does_not_go_first_with_all_of_them() -> None:
    arrivals = ["hog", "hog", "hog", "hog", "shop", "hog", "blog", "shop"]
    served = run(_served_order, FairTurns[str](1), arrivals)
    # A FIFO queue (the single slot before) would serve hog0-hog3, then shop4.
    assert served == ["hog0", "shop4", "blog6", "hog1", "shop7", "hog2", "hog3", "hog5"]


def test_a_project_with_too_many_waiting_is_refused_and_others_are_not() -> None:
    async def scenario() -> None:
        turns = FairTurns[str](1, max_waiting_per_key=2)
        release = anyio.Event()

        async def hold(key: str) -> None:
            async with turns.turn(key):
                await release.wait()

        async with anyio.create_task_group() as group:
            for key in ("hog", "hog", "hog"):  # one holds, two wait: hog is full
                group.start_soon(hold, key)
                await anyio.wait_all_tasks_blocked()
            with pytest.raises(RateLimited) as refused:
                turns.check("hog")
            assert refused.value.retry_after_seconds == 1
            turns.check("shop")  # another project still queues
            release.set()
        turns.check("hog")  # once served, it may queue again

    run(scenario)


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
