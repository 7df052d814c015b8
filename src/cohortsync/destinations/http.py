"""The one HTTP client every connector uses: timeouts, retries, budgets and safe error text.

A reply's HTTP status maps to an :class:`Action` through a table (``DEFAULT_ACTIONS``); a
connector passes only its quirks as overrides, and a function that turns an error reply into the
partner's message. Transient failures (429, 5xx, timeouts) are retried with full-jitter
exponential backoff that never retries sooner than ``Retry-After`` (seconds or an HTTP date),
within a bounded budget; then they are raised for the sync engine to decide.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from cohortsync.destinations.base import Capabilities
from cohortsync.destinations.errors import PartnerConfigError, RateLimited, TransientError
from cohortsync.redaction import redact

log = logging.getLogger(__name__)


class Action(enum.Enum):
    """What to do with a reply."""

    OK = "ok"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    FAIL_CONFIG = "fail_config"


DEFAULT_ACTIONS: Mapping[int, Action] = {
    400: Action.FAIL_CONFIG,
    401: Action.FAIL_CONFIG,
    403: Action.FAIL_CONFIG,
    404: Action.FAIL_CONFIG,
    408: Action.RETRY,
    409: Action.RETRY,
    425: Action.RETRY,
    429: Action.RATE_LIMITED,
}


def action_for(status: int, overrides: Mapping[int, Action] = {}) -> Action:
    """The action for an HTTP status: the connector's override, else the default table
    (2xx ok, 5xx retry, other 4xx fail as a configuration error)."""
    if status in overrides:
        return overrides[status]
    if status in DEFAULT_ACTIONS:
        return DEFAULT_ACTIONS[status]
    if 200 <= status < 300:
        return Action.OK
    if status >= 500:
        return Action.RETRY
    return Action.FAIL_CONFIG


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient failures of one request."""

    attempts: int = 6  # tries in all, the first included
    base_seconds: float = 0.5
    cap_seconds: float = 60.0
    budget_seconds: float = 300.0  # the most time spent waiting between tries of one request

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Full-jitter backoff for the ``retry``-th retry (0-based), never before Retry-After."""
        backoff = rng.uniform(0, min(self.cap_seconds, self.base_seconds * 2**retry))
        return max(backoff, retry_after or 0.0)


@dataclass
class CallStats:
    """Counters of one client, for run records and metrics."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    timeouts: int = 0
    waited_seconds: float = 0.0


class AccountBudget:
    """The concurrency cap and request rate of one partner account, shared by all its syncs."""

    def __init__(
        self,
        max_concurrency: int,
        requests_per_second: float | None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._slots = threading.BoundedSemaphore(max(max_concurrency, 1))
        self._interval = 1.0 / requests_per_second if requests_per_second else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._sleep = sleep

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the account's concurrent request slots, paced to its request rate."""
        with self._slots:
            if self._interval:
                with self._lock:
                    now = self._monotonic()
                    start = max(now, self._next)
                    self._next = start + self._interval
                if start > now:
                    self._sleep(start - now)
            yield


_budgets: dict[str, AccountBudget] = {}
_budgets_lock = threading.Lock()


def account_budget(partner: str, account: str, capabilities: Capabilities) -> AccountBudget:
    """The one budget of a partner account (keyed by a hash, so no secret is kept as a key)."""
    key = hashlib.sha256(f"{partner}\x00{account}".encode()).hexdigest()
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = AccountBudget(capabilities.max_concurrency, capabilities.requests_per_second)
            _budgets[key] = budget
        return budget


Pick = Callable[[Any], str | None]


def _nothing(_body: Any) -> str | None:
    return None


def http_status(response: httpx.Response) -> int:
    """The reply's own HTTP status (what most partners mean)."""
    return response.status_code


def partner_message(response: httpx.Response, pick: Pick = _nothing) -> str:
    """The partner's own words for a failed reply: what ``pick`` finds in its JSON body, else
    the body itself (shortened), else the status."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or f"HTTP {response.status_code}"
    return pick(body) or str(body)[:300]


@dataclass
class PartnerClient:
    """HTTP to one partner account: base URL, auth headers, the action table, retries."""

    partner: str
    base_url: str
    headers: Mapping[str, str]
    secrets: Sequence[str]
    budget: AccountBudget
    overrides: Mapping[int, Action] = field(default_factory=dict)
    describe: Pick = _nothing  # finds the partner's message in an error body
    status_of: Callable[[httpx.Response], int] = http_status  # the status a reply stands for
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    transport: httpx.BaseTransport | None = None
    stats: CallStats = field(default_factory=CallStats)

    def __post_init__(self) -> None:
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=dict(self.headers),
            timeout=httpx.Timeout(self.timeout, connect=10.0),
            transport=self.transport,
            follow_redirects=False,
        )

    def message(self, text: str) -> str:
        """``text`` made safe to show: the account's secrets masked."""
        return redact(text, self.secrets)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        accept: Sequence[int] = (),
    ) -> httpx.Response:
        """Send one request, retrying transient failures; a 2xx reply (or one whose status is
        in ``accept``) is returned, anything else raises a :class:`DestinationError` subclass
        carrying the partner's message."""
        waited = 0.0
        for attempt in range(self.retry.attempts):
            try:
                return self._once(method, path, json, params, content, headers, accept)
            except TransientError as error:
                retry_after = error.retry_after if isinstance(error, RateLimited) else None
                wait = self.retry.delay(attempt, retry_after, self.rng)
                last = attempt + 1 >= self.retry.attempts
                if last or waited + wait > self.retry.budget_seconds:
                    raise
                log.info(
                    "partner call failed; retrying",
                    extra={"partner": self.partner, "wait_seconds": round(wait, 3)},
                )
                self.stats.retries += 1
                self.stats.waited_seconds += wait
                waited += wait
                self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(
        self,
        method: str,
        path: str,
        json: Any,
        params: Mapping[str, Any] | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        accept: Sequence[int],
    ) -> httpx.Response:
        self.stats.requests += 1
        try:
            with self.budget.slot():
                response = self._http.request(
                    method, path, json=json, params=params, content=content, headers=headers
                )
        except httpx.TimeoutException:
            self.stats.timeouts += 1
            raise TransientError(f"{self.partner} did not answer in time") from None
        except httpx.TransportError as error:
            raise TransientError(
                self.message(f"could not reach {self.partner}: {type(error).__name__}")
            ) from None
        status = self.status_of(response)
        action = action_for(status, self.overrides)
        if action is Action.OK or status in accept:
            return response
        text = self.message(partner_message(response, self.describe))
        if action is Action.RATE_LIMITED:
            self.stats.rate_limited += 1
            wait = parse_retry_after(response.headers.get("retry-after"))
            raise RateLimited(text, status, wait)
        if action is Action.RETRY:
            self.stats.server_errors += 1
            raise TransientError(text, status)
        raise PartnerConfigError(text, status)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()
