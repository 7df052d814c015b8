"""What a partner call waits on: its account's budget, shared by every sync of the account
(SPEC R-SYN-6).

A :class:`Budget` is a concurrency cap, a request rate and, where the partner meters reads of
list members by the minute (Iterable: 5 a minute), a read budget. :class:`PartnerClient
<cohortsync.destinations.http.PartnerClient>` holds one of its slots for each try (paced to the
request rate inside the slot) and takes a read turn before each read. A :class:`BudgetSource`
gives the budget of an account: in this process (:func:`account_budget`, the default, enough on
SQLite's one process), or held in PostgreSQL and shared by every process
(:mod:`cohortsync.destinations.shared_budgets`). Accounts are known by :func:`account_key`, a
hash, so no secret is ever a key.

In process, read turns are waited for through the calling client's ``sleep`` on the budget's
``read_clock`` (both injectable), so tests record those waits instead of sleeping them.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from cohortsync.destinations.base import Capabilities

# Read turns are spaced a little wider than the partner's per-minute budget: requests taking
# different times to arrive must not squeeze one more read into the partner's minute.
READ_MARGIN_SECONDS = 0.5


def account_key(partner: str, account: str) -> str:
    """The key of a partner account: a sha256 of partner and account (an API key, a token),
    so the secret itself is never kept as a key or stored."""
    return hashlib.sha256(f"{partner}\x00{account}".encode()).hexdigest()


def read_interval(reads_per_minute: float) -> float:
    """Seconds between read turns for a partner's per-minute read budget, with the margin."""
    return 60.0 / reads_per_minute + READ_MARGIN_SECONDS


class Budget(Protocol):
    """The budget of one partner account, as a client uses it."""

    def slot(self) -> AbstractContextManager[float]:
        """Hold one of the account's concurrent request slots, paced to its request rate; gives
        the seconds the pacing waited."""
        ...

    def read_turn(self, sleep: Callable[[float], None]) -> float:
        """Wait, through ``sleep``, for the account's next read of list members; returns the
        seconds waited."""
        ...


class BudgetSource(Protocol):
    """Where the budget of a partner account comes from (``ConnectorConfig.budgets``)."""

    def __call__(
        self, partner: str, account: str, capabilities: Capabilities, *, timeout: float
    ) -> Budget:
        """The budget of ``account`` of ``partner``, for a client whose tries each end within
        ``timeout`` seconds (how long a slot can be in use)."""
        ...


class Pacer:
    """Turns at least ``interval`` seconds apart on one clock, taken one at a time however
    many threads ask. A turn starts when the clock says the wait is over, so a ``sleep`` that
    only records (tests) never makes later turns wait longer and longer."""

    def __init__(self, interval: float, monotonic: Callable[[], float]) -> None:
        self._interval = interval
        self._monotonic = monotonic
        self._last = float("-inf")
        self._turns = threading.Lock()

    def wait_turn(self, sleep: Callable[[float], None]) -> float:
        """Wait through ``sleep`` until the caller's turn; returns the seconds waited."""
        with self._turns:
            wait = max(self._last + self._interval - self._monotonic(), 0.0)
            if wait:
                sleep(wait)
            self._last = self._monotonic()
        return wait


class AccountBudget:
    """The concurrency cap, request rate and read budget of one partner account, shared by
    all its syncs in this process."""

    def __init__(
        self,
        max_concurrency: int,
        requests_per_second: float | None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        reads_per_minute: float | None = None,
        read_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``monotonic`` and ``sleep`` pace requests (a fraction of a second, slept for real:
        through a client's recording sleep those waits would mix into the retry waits tests
        assert one by one); read turns run on ``read_clock`` and wait through each caller's
        sleep, so a test that drives a clock and records sleeps never waits."""
        self._slots = threading.BoundedSemaphore(max(max_concurrency, 1))
        self._requests = (
            Pacer(1.0 / requests_per_second, monotonic) if requests_per_second else None
        )
        self._reads = (
            Pacer(read_interval(reads_per_minute), read_clock) if reads_per_minute else None
        )
        self._sleep = sleep

    @contextmanager
    def slot(self) -> Iterator[float]:
        """Hold one of the account's concurrent request slots, paced to its request rate; gives
        the seconds the pacing waited."""
        with self._slots:
            waited = self._requests.wait_turn(self._sleep) if self._requests is not None else 0.0
            yield waited

    def read_turn(self, sleep: Callable[[float], None]) -> float:
        """Wait, through the caller's ``sleep``, for the account's next read of list members
        (the partner's per-minute read budget); returns the seconds waited."""
        return self._reads.wait_turn(sleep) if self._reads is not None else 0.0


_budgets: dict[str, AccountBudget] = {}
_budgets_lock = threading.Lock()


def forget_budgets() -> None:
    """Drop every account's budget: the next call of an account starts with no turn taken
    (a test's fresh world; accounts of earlier tests must not make it wait)."""
    with _budgets_lock:
        _budgets.clear()


def account_budget(
    partner: str,
    account: str,
    capabilities: Capabilities,
    read_clock: Callable[[], float] = time.monotonic,
    *,
    timeout: float = 30.0,
) -> AccountBudget:
    """The one budget of a partner account in this process; its read turns run on the
    ``read_clock`` of the first caller. ``timeout`` is not needed here: a slot of this process
    is given back when its holder's block ends, whatever happens."""
    key = account_key(partner, account)
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = AccountBudget(
                capabilities.max_concurrency,
                capabilities.requests_per_second,
                reads_per_minute=capabilities.reads_per_minute,
                read_clock=read_clock,
            )
            _budgets[key] = budget
        return budget
