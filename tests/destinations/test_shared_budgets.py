"""Partner budgets held in PostgreSQL (SPEC R-SYN-6): callers on threads, and on two separate
processes, sharing one partner account never take more than its rate in any second nor more
than its concurrency cap at once; a slot whose holder was killed comes back once its time is
up, never before. SQLite keeps the in-process budget.

Every check is the partner's rule itself (the count in any one-second window, the peak of
holders at once), not a performance figure.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cohortsync.destinations.base import Capabilities
from cohortsync.destinations.budgets import account_budget, account_key
from cohortsync.destinations.shared_budgets import SharedBudget, SharedBudgets, budgets_for
from cohortsync.partners.clevertap.destination import CAPABILITIES as CLEVERTAP
from cohortsync.partners.iterable.destination import CAPABILITIES as ITERABLE
from cohortsync.storage.database import create_engine, write_transaction
from cohortsync.storage.partner_budget_store import PartnerBudgetStore
from cohortsync.storage.tables import partner_slots

ON_POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing shared but the database
TIMEOUT = 30.0  # a client's deadline for one try

Interval = tuple[float, float]  # (slot held from, to) on the host's monotonic clock


def most_in_one_second(times: list[float]) -> int:
    """The largest number of ``times`` inside any one-second window."""
    ordered = sorted(times)
    return max(
        (sum(1 for later in ordered[i:] if later - start < 1.0) for i, start in enumerate(ordered)),
        default=0,
    )


def peak_at_once(intervals: list[Interval]) -> int:
    """The most intervals open at one moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = open_now = 0
    for _, step in edges:
        open_now += step
        peak = max(peak, open_now)
    return peak


def callers(
    url: str,
    account: str,
    capabilities: Capabilities,
    threads: int,
    calls: int,
    hold: float,
    go: Callable[[], None] = lambda: None,
) -> list[Interval]:
    """``threads`` callers of the account's shared budget in this process, each holding a slot
    ``calls`` times for ``hold`` seconds once ``go`` returns; when each held its slots."""
    engine = create_engine(url)
    budget = SharedBudgets(engine)("iterable", account, capabilities, timeout=TIMEOUT)
    held: list[Interval] = []
    lock = threading.Lock()

    def call() -> None:
        for _ in range(calls):
            with budget.slot():
                start = time.monotonic()  # the moment the request would be sent
                time.sleep(hold)
                end = time.monotonic()
            with lock:
                held.append((start, end))

    go()
    running = [threading.Thread(target=call) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    engine.dispose()
    return held


def _process_callers(
    url: str,
    account: str,
    capabilities: Capabilities,
    threads: int,
    calls: int,
    hold: float,
    ready: Queue[object],
    go: Event,
) -> None:
    """:func:`callers` in a process of its own, starting when the parent says go."""

    def wait_for_go() -> None:
        ready.put("ready")
        go.wait(60)

    held = callers(url, account, capabilities, threads, calls, hold, wait_for_go)
    ready.put(held)


def in_two_processes(
    url: str, capabilities: Capabilities, threads: int, calls: int, hold: float
) -> list[Interval]:
    """:func:`callers` in two separate processes on one account, started together."""
    account = uuid.uuid4().hex
    results: Queue[object] = SPAWN.Queue()
    go = SPAWN.Event()
    processes = [
        SPAWN.Process(
            target=_process_callers,
            args=(url, account, capabilities, threads, calls, hold, results, go),
        )
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    try:
        assert [results.get(timeout=60) for _ in processes] == ["ready", "ready"]
        go.set()
        held: list[Interval] = []
        for _ in processes:
            found = results.get(timeout=120)
            assert isinstance(found, list)
            held.extend(found)
    finally:
        for process in processes:
            process.join(30)
            process.kill()
    for process in processes:
        assert process.exitcode == 0
    return held


# -- the source, by engine -----------------------------------------------------------------------


def test_postgresql_shares_budgets_and_sqlite_keeps_them_in_process(engine: Engine) -> None:
    source = budgets_for(engine)
    if engine.dialect.name == "postgresql":
        assert isinstance(source, SharedBudgets)
        budget = source("iterable", "key", ITERABLE, timeout=TIMEOUT)
        assert isinstance(budget, SharedBudget)
    else:
        assert source is account_budget


# -- rate: a token bucket of capacity 1 ----------------------------------------------------------


@ON_POSTGRES
def test_threads_of_one_process_take_at_most_the_rate_in_any_second(database_url: str) -> None:
    held = callers(database_url, uuid.uuid4().hex, ITERABLE, threads=8, calls=2, hold=0.0)
    assert len(held) == 16
    assert ITERABLE.requests_per_second == 5
    assert most_in_one_second([start for start, _ in held]) <= 5


@ON_POSTGRES
def test_two_processes_on_one_account_take_at_most_the_rate_in_any_second(
    database_url: str,
) -> None:
    held = in_two_processes(database_url, ITERABLE, threads=4, calls=2, hold=0.0)
    assert len(held) == 16
    assert most_in_one_second([start for start, _ in held]) <= 5


@ON_POSTGRES
def test_a_turn_after_a_quiet_spell_is_at_once_and_saves_up_no_burst(engine: Engine) -> None:
    key = account_key("iterable", uuid.uuid4().hex)
    with write_transaction(engine) as connection:
        first = PartnerBudgetStore(connection).take_turn(key, "request", 0.2)
    with write_transaction(engine) as connection:
        second = PartnerBudgetStore(connection).take_turn(key, "request", 0.2)
    assert first == 0.0
    assert second > 0.0  # capacity 1: the second turn waits, however long the account was idle


# -- concurrency: a slot table -------------------------------------------------------------------


@ON_POSTGRES
def test_thirty_threads_at_a_cap_of_fifteen_hold_fifteen_slots_at_most(
    database_url: str,
) -> None:
    held = callers(database_url, uuid.uuid4().hex, CLEVERTAP, threads=30, calls=1, hold=1.0)
    assert len(held) == 30
    assert CLEVERTAP.max_concurrency == 15
    assert peak_at_once(held) == 15


@ON_POSTGRES
def test_thirty_callers_in_two_processes_at_a_cap_of_fifteen_hold_fifteen_at_most(
    database_url: str,
) -> None:
    held = in_two_processes(database_url, CLEVERTAP, threads=15, calls=1, hold=1.0)
    assert len(held) == 30
    assert peak_at_once(held) == 15


def _hold_forever(url: str, account: str, ttl: float, holding: Queue[object]) -> None:
    """Take the account's one slot and keep it until killed."""
    engine = create_engine(url)
    budget = SharedBudget(engine, account, 1, None, None, ttl)
    with budget.slot():
        holding.put("holding")
        time.sleep(600)


def _slot_row(engine: Engine, key: str) -> tuple[str | None, datetime | None]:
    """Who holds the account's one slot, and until when."""
    with write_transaction(engine) as connection:
        row = connection.execute(
            sa.select(partner_slots.c.holder, partner_slots.c.until).where(
                partner_slots.c.account_key == key
            )
        ).one()
    return row.holder, row.until


@pytest.fixture
def killed_holder(engine: Engine, database_url: str) -> Iterator[tuple[str, float]]:
    """An account of one slot whose holder, a process of its own, was killed with SIGKILL while
    holding it for ``ttl`` seconds: (the account's key, ttl)."""
    key, ttl = account_key("clevertap", uuid.uuid4().hex), 2.0
    holding: Queue[object] = SPAWN.Queue()
    holder = SPAWN.Process(target=_hold_forever, args=(database_url, key, ttl, holding))
    holder.start()
    try:
        assert holding.get(timeout=60) == "holding"
        with write_transaction(engine) as connection:  # held: nobody else gets it meanwhile
            assert PartnerBudgetStore(connection).claim_slot(key, 1, "another", ttl) is None
    finally:
        holder.kill()  # SIGKILL: no release, no clean-up
        holder.join(30)
    assert holder.exitcode == -9
    yield key, ttl


@ON_POSTGRES
def test_a_killed_holders_slot_comes_back_once_its_time_is_up_and_not_before(
    engine: Engine, killed_holder: tuple[str, float]
) -> None:
    key, ttl = killed_holder
    dead_holder, dead_until = _slot_row(engine, key)
    budget = SharedBudget(engine, key, 1, None, None, ttl)
    with budget.slot():
        holder, until = _slot_row(engine, key)
    assert holder is not None and holder != dead_holder
    assert until is not None and dead_until is not None
    # Taken at until - ttl on the database's clock: not before the killed holder's time was up.
    assert until - timedelta(seconds=ttl) >= dead_until
    assert _slot_row(engine, key) == (None, None)  # given back by its holder


@ON_POSTGRES
def test_a_sender_woken_late_from_its_turn_never_goes_out_with_the_next(
    database_url: str,
) -> None:
    """Turns are handed out on time, but a loaded host may wake a sender late: the send is
    stamped, so the next turn's sender still waits a whole interval after it."""
    engine = create_engine(database_url)
    account = uuid.uuid4().hex
    interval = 1.03 / ITERABLE.requests_per_second  # type: ignore[operator]
    shared = SharedBudgets(engine)("iterable", account, ITERABLE, timeout=TIMEOUT)
    late = SharedBudget(
        engine,
        account_key("iterable", account),
        ITERABLE.max_concurrency,
        interval,
        None,
        ttl=TIMEOUT,
        sleep=lambda seconds: time.sleep(seconds + 0.9 * interval),  # wakes up late
    )
    sent: list[float] = []
    with shared.slot():  # the account's current turn: the late sender's comes next
        sent.append(time.monotonic())

    def send(budget: SharedBudget, after: float) -> None:
        time.sleep(after)
        with budget.slot():
            sent.append(time.monotonic())

    threads = [
        threading.Thread(target=send, args=(late, 0.0)),
        threading.Thread(target=send, args=(shared, 0.05)),  # takes the turn after the late one
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    gaps = [later - earlier for earlier, later in itertools.pairwise(sorted(sent))]
    assert min(gaps) >= interval * 0.95, gaps  # the database and this host round differently
