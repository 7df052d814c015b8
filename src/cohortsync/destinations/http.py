"""The one HTTP client every connector uses: timeouts, retries, budgets and safe error text.

A reply's HTTP status maps to an :class:`Action` through a table (``DEFAULT_ACTIONS``); a
connector passes only its quirks as overrides, and a function that turns an error reply into the
partner's message. Transient failures (429, 5xx, timeouts) are retried with full-jitter
exponential backoff that never retries sooner than ``Retry-After`` (seconds or an HTTP date),
within a bounded budget; then they are raised for the sync engine to decide.

Every connection passes the outbound guard (:mod:`cohortsync.outbound`): a partner host that is
or resolves to a private address is refused unless the operator allows it. Each try has a total
deadline (``timeout``: connect, send and the whole reply, a streamed one's last line too), a
reply is read up to ``max_reply_bytes`` decoded (whatever its compression), and an error
reply's text is the partner's own message field only, never its body as such.

Each try holds a slot of the partner account's :class:`~cohortsync.destinations.budgets.Budget`
(its concurrency cap, paced to its request rate inside the slot), and each read of list members
first takes the account's read turn; the budget is shared by every sync of that account.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from cohortsync.clock import Clock, SystemClock
from cohortsync.destinations.budgets import AccountBudget as AccountBudget  # noqa: PLC0414
from cohortsync.destinations.budgets import Budget
from cohortsync.destinations.budgets import account_budget as account_budget  # noqa: PLC0414
from cohortsync.destinations.budgets import forget_budgets as forget_budgets  # noqa: PLC0414
from cohortsync.destinations.errors import (
    EndpointRefused,
    PartnerConfigError,
    RateLimited,
    TransientError,
)
from cohortsync.destinations.run_tag import tag_request
from cohortsync.outbound import replies
from cohortsync.outbound.encodings import ACCEPTED
from cohortsync.outbound.guard import OutboundGuard, OutboundRefused
from cohortsync.outbound.transport import GuardedTransport, deadline_at, read_by
from cohortsync.redaction import redact

# AccountBudget, account_budget and forget_budgets are imported above as themselves: re-exported
# from here, where they used to live (tests import them from this module).

log = logging.getLogger(__name__)

_T = TypeVar("_T")


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


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds, or an HTTP date as seen
    at ``now``)."""
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
    return max((when - now).total_seconds(), 0.0)


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
    waited_seconds: float = 0.0  # between tries of a request
    paced_seconds: float = 0.0  # waiting for the account's request and read turns


Pick = Callable[[Any], str | None]


def _nothing(_body: Any) -> str | None:
    return None


def http_status(response: httpx.Response) -> int:
    """The reply's own HTTP status (what most partners mean)."""
    return response.status_code


MAX_REPLY_BYTES = 16 * 1024 * 1024  # a partner's largest documented reply is far smaller
ERROR_BODY_BYTES = 64 * 1024  # enough for any partner's error message
MAX_LINE = 64 * 1024  # one line of a streamed list (an email, a user id)


def partner_message(response: httpx.Response, pick: Pick = _nothing) -> str:
    """The partner's own words for a failed reply: what ``pick`` finds in its JSON body (the
    partner's documented message field), else the status. The body itself is never repeated:
    it may come from any server the URL reaches, and the message is shown."""
    try:
        body = response.json()
    except ValueError:
        body = None
    found = pick(body) if body is not None else None
    return found or f"HTTP {response.status_code}"


@dataclass
class PartnerClient:
    """HTTP to one partner account: base URL, auth headers, the action table, retries."""

    partner: str
    base_url: str
    headers: Mapping[str, str]
    secrets: Sequence[str]
    budget: Budget
    overrides: Mapping[int, Action] = field(default_factory=dict)
    describe: Pick = _nothing  # finds the partner's message in an error body
    status_of: Callable[[httpx.Response], int] = http_status  # the status a reply stands for
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    clock: Clock = field(default_factory=SystemClock)  # reads HTTP-date Retry-After
    rng: random.Random = field(default_factory=random.Random)
    transport: httpx.BaseTransport | None = None  # a test's; else the guarded one
    guard: OutboundGuard = field(default_factory=OutboundGuard)
    max_reply_bytes: int = MAX_REPLY_BYTES
    stats: CallStats = field(default_factory=CallStats)

    def __post_init__(self) -> None:
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Accept-Encoding": ACCEPTED, **self.headers},
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            transport=self.transport or GuardedTransport(self.guard),
            follow_redirects=False,  # a redirect is an answer to judge, never followed
            event_hooks={"request": [tag_request]},  # X-Cohortsync-Run during a sync run
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
        read: bool = False,
    ) -> httpx.Response:
        """Send one request, retrying transient failures; a 2xx reply (or one whose status is
        in ``accept``) is returned, anything else raises a :class:`DestinationError` subclass
        carrying the partner's message. ``read``: every try waits for the account's read turn."""
        built = self._http.build_request(
            method, path, json=json, params=params, content=content, headers=headers
        )
        response, _ = self._retrying(lambda: self._once(built, accept, read, stream=False))
        return response

    def lines(
        self, path: str, *, params: Mapping[str, Any] | None = None, read: bool = False
    ) -> Iterator[str]:
        """The non-empty lines of a text reply to a GET, stripped, read as they arrive (a
        long member list is never held whole); retried like :meth:`request` until the reply
        starts, a failure mid-body (its total deadline passing too) raises
        :class:`TransientError`."""
        built = self._http.build_request("GET", path, params=params)
        response, end = self._retrying(lambda: self._once(built, (), read, stream=True))
        try:
            with self._transient(
                f"{self.partner} did not finish its reply in time",
                f"{self.partner} broke off its reply",
            ):
                for line in read_by(end, replies.lines(response, MAX_LINE)):
                    if line.strip():
                        yield line.strip()
        except (replies.ReplyTooLarge, replies.ReplyUnreadable) as error:
            raise PartnerConfigError(f"{self.partner}: {error.message}") from None
        finally:
            response.close()

    def _retrying(self, attempt_once: Callable[[], _T]) -> _T:
        waited = 0.0
        for attempt in range(self.retry.attempts):
            try:
                return attempt_once()
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
        self, request: httpx.Request, accept: Sequence[int], read: bool, stream: bool
    ) -> tuple[httpx.Response, float]:
        """One try: the reply (read, or only its head when ``stream``) and the moment its
        total deadline ends (``time.monotonic``), by which a streamed body is read."""
        if read:
            self.stats.paced_seconds += self.budget.read_turn(self.sleep)
        self.stats.requests += 1
        with (
            self._transient(
                f"{self.partner} did not answer in time", f"could not reach {self.partner}"
            ),
            self.budget.slot() as paced,
            deadline_at(time.monotonic() + self.timeout) as end,
        ):
            self.stats.paced_seconds += paced
            response = self._sent(request)
            head = response.status_code
            wanted = action_for(head, self.overrides) is Action.OK or head in accept
            if stream and wanted:
                return response, end  # its lines are read as they come, by the deadline
            response = self._read(response, wanted)
        status = self.status_of(response)
        action = action_for(status, self.overrides)
        if action is Action.OK or status in accept:
            return response, end
        text = self.message(partner_message(response, self.describe))
        if action is Action.RATE_LIMITED:
            self.stats.rate_limited += 1
            wait = parse_retry_after(response.headers.get("retry-after"), self.clock.now())
            raise RateLimited(text, status, wait)
        if action is Action.RETRY:
            self.stats.server_errors += 1
            raise TransientError(text, status)
        raise PartnerConfigError(text, status)

    def _sent(self, request: httpx.Request) -> httpx.Response:
        """The reply's head; the guard's refusal as the partner's configuration error."""
        try:
            return self._http.send(request, stream=True)
        except OutboundRefused as refused:
            raise EndpointRefused(refused.message) from None

    def _read(self, response: httpx.Response, wanted: bool) -> httpx.Response:
        """The reply read: whole up to ``max_reply_bytes`` when it is the answer, else only as
        much as its error message needs."""
        if not wanted:
            try:
                body, _ = replies.read_at_most(response, ERROR_BODY_BYTES)
            except replies.ReplyUnreadable:
                body = b""  # the message is then the status
            return replies.with_body(response, body)
        try:
            return replies.buffered(response, self.max_reply_bytes)
        except (replies.ReplyTooLarge, replies.ReplyUnreadable) as error:
            raise PartnerConfigError(f"{self.partner}: {error.message}") from None

    @contextmanager
    def _transient(self, timed_out: str, broke_off: str) -> Iterator[None]:
        """Timeouts and broken connections as :class:`TransientError` (retried), counted."""
        try:
            yield
        except httpx.TimeoutException:
            self.stats.timeouts += 1
            raise TransientError(timed_out) from None
        except httpx.TransportError as error:
            raise TransientError(self.message(f"{broke_off}: {type(error).__name__}")) from None

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()
