"""Partner budgets held in PostgreSQL, shared by every worker and process (SPEC R-SYN-6): with
several processes each keeping its own budget, three workers would make three times the traffic
a partner allows.

**Rate.** A request is stamped as it goes out: one statement sets the account's ``sent`` row to
now + the interval if the time it holds is past, else says how long to wait (a duration on the
database's own clock, so the clocks of the workers' hosts never matter). Sends are therefore
spaced by at least the interval as they happen, not as they were planned: a turn handed out in
advance (a token bucket) lets a sender woken late on a loaded host go out together with the
next one's. Read turns (Iterable's 5 a minute) are handed out in advance, one row per account
(``read``): a token bucket of capacity 1 (GCRA), since "at most r in any second" allows no
burst.

**Concurrency.** Each account has rows for its slots ``0 … cap - 1``; a try takes a free one
(nobody holds it, or its holder's time is up) and gives it back by its holder's name. When none
is free it asks again every 20 to 50 ms. A holder's time, the slot's ``ttl``, outlasts anything
it may do while holding the slot, so a slot whose time is up has nothing in flight and the cap
holds even when a process is killed holding one: capacity dips for at most ``ttl``.

As in process, a try holds a slot, then waits for its send inside it. Retry-After stays each
client's own (:class:`~cohortsync.destinations.http.PartnerClient`).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine

from cohortsync.destinations.base import Capabilities
from cohortsync.destinations.budgets import BudgetSource, account_budget, account_key, read_interval
from cohortsync.domain.errors import DatabaseUnavailable
from cohortsync.storage.database import write_transaction
from cohortsync.storage.partner_budget_store import PartnerBudgetStore

log = logging.getLogger(__name__)

# Sends are 3 % further apart than the partner's rate (Iterable's 5 a second: one each 206 ms,
# 4.85 a second). A request reaches the partner a little after its stamp (the connection, the
# network, a busy host), by a different little each time; six requests need five intervals, so
# the margin gives them 30 ms of such jitter before a sixth could fall into one second, and
# still spends 97 % of the budget.
RATE_MARGIN = 1.03
# A stamp that comes back later than this may be older than the send it allows: the send is
# stamped again (without waiting), so the one after it keeps its distance from the send.
LATE_STAMP_SECONDS = 0.02
# How much longer a slot is held for than its holder can use it: the time between the database
# stamping the slot and the holder starting its clock, and a little more.
SLOT_TTL_MARGIN_SECONDS = 5.0
# When every slot is held, ask again after a pause drawn from this range: short next to a
# partner call, long enough that waiting workers do not keep the database busy, and drawn at
# random so that they do not ask in step.
SLOT_POLL_SECONDS = (0.02, 0.05)
READ, SENT = "read", "sent"


def _holder_prefix() -> str:
    """Where a holder runs (host and process), for ``SELECT * FROM partner_slots``."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}"


class SharedBudget:
    """The concurrency cap, request rate and read budget of one partner account, held in
    PostgreSQL and shared by every process."""

    def __init__(
        self,
        engine: Engine,
        key: str,
        slots: int,
        request_interval: float | None,
        read_interval: float | None,
        ttl: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        """``key``: the account's :func:`account_key`; ``slots``: its cap; ``*_interval``:
        seconds between sends and between reads (None: no limit); ``ttl``: seconds a slot is
        held for at most. ``sleep`` waits for slots and sends (for real: a fraction of a
        second); read turns wait through the caller's sleep, as in process."""
        self._engine = engine
        self._key = key
        self._slots = max(slots, 1)
        self._request_interval = request_interval
        self._read_interval = read_interval
        self._ttl = ttl
        self._sleep = sleep
        self._rng = rng or random.Random()

    @contextmanager
    def slot(self) -> Iterator[float]:
        """Hold one of the account's slots, then wait for its send; gives the seconds that
        waited (as in process, the wait for a slot is not counted)."""
        holder = f"{_holder_prefix()}:{uuid.uuid4().hex[:12]}"
        held = [self._claim(holder)]
        try:
            yield self._stamp(held, holder)
        finally:
            self._release(held[0], holder)

    def _stamp(self, held: list[int], holder: str) -> float:
        """Wait until the account's last send is a whole interval past, and stamp this one;
        the slot's time starts again first (the wait may have been long), and a slot whose
        time ran out meanwhile is claimed anew. A stamp that took long to come back (a busy
        host) is taken again as the send goes, so the next sender waits from the send."""
        if self._request_interval is None:
            return 0.0
        waited = 0.0
        while True:
            with write_transaction(self._engine) as connection:
                store = PartnerBudgetStore(connection)
                kept = store.hold_slot(self._key, held[0], holder, self._ttl)
                if kept:
                    asked = time.monotonic()
                    wait = store.stamp_send(self._key, SENT, self._request_interval)
            if not kept:
                held[0] = self._claim(holder)
                continue
            if not wait:
                if time.monotonic() - asked > LATE_STAMP_SECONDS:
                    with write_transaction(self._engine) as connection:
                        PartnerBudgetStore(connection).push_send(
                            self._key, SENT, self._request_interval
                        )
                return waited
            self._sleep(wait)
            waited += wait

    def read_turn(self, sleep: Callable[[float], None]) -> float:
        """Wait, through the caller's ``sleep``, for the account's next read of list members;
        returns the seconds waited."""
        if self._read_interval is None:
            return 0.0
        with write_transaction(self._engine) as connection:
            wait = PartnerBudgetStore(connection).take_turn(self._key, READ, self._read_interval)
            turn = time.monotonic() + wait  # on this host's clock, before the commit's round trip
        wait = max(turn - time.monotonic(), 0.0)
        if wait:
            sleep(wait)
        return wait

    def _claim(self, holder: str) -> int:
        """A slot taken for ``holder``, waiting until one is free; the account's slots are
        made the first time none is found."""
        made = False
        while True:
            with write_transaction(self._engine) as connection:
                slot = PartnerBudgetStore(connection).claim_slot(
                    self._key, self._slots, holder, self._ttl
                )
            if slot is not None:
                return slot
            if not made:
                with write_transaction(self._engine) as connection:
                    PartnerBudgetStore(connection).add_slots(self._key, self._slots)
                made = True
                continue
            self._sleep(self._rng.uniform(*SLOT_POLL_SECONDS))

    def _release(self, slot: int, holder: str) -> None:
        try:
            with write_transaction(self._engine) as connection:
                PartnerBudgetStore(connection).release_slot(self._key, slot, holder)
        except DatabaseUnavailable:  # the slot comes back by itself when its time is up
            log.warning("a partner slot could not be given back", extra={"slot": slot})


class SharedBudgets:
    """Where budgets come from on PostgreSQL: the database, shared by every process."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __call__(
        self, partner: str, account: str, capabilities: Capabilities, *, timeout: float
    ) -> SharedBudget:
        """The budget of ``account`` of ``partner`` for a client whose tries each end within
        ``timeout`` seconds. A slot's time starts when it is claimed and again when its send is
        stamped, and lasts ``timeout`` + slots x interval + :data:`SLOT_TTL_MARGIN_SECONDS`."""
        rate = capabilities.requests_per_second
        request = RATE_MARGIN / rate if rate else None
        slots = max(capabilities.max_concurrency, 1)
        reads = capabilities.reads_per_minute
        return SharedBudget(
            self._engine,
            account_key(partner, account),
            slots,
            request,
            read_interval(reads) if reads else None,
            ttl=timeout + slots * (request or 0.0) + SLOT_TTL_MARGIN_SECONDS,
        )


def budgets_for(engine: Engine) -> BudgetSource:
    """Where partner budgets come from for a service on ``engine``: PostgreSQL, shared by every
    process that uses it; in this process on SQLite (one process)."""
    if engine.dialect.name == "postgresql":
        return SharedBudgets(engine)
    return account_budget
