"""What a connector is built from (:class:`ConnectorConfig`): credentials, settings, where to
send, which addresses it may reach, how to retry, and where its account's budget comes from; and
what every HTTP connector shares (:class:`HttpConnector`)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from cohortsync.clock import Clock, SystemClock
from cohortsync.destinations.base import Capabilities, RunInfo
from cohortsync.destinations.budgets import BudgetSource, account_budget
from cohortsync.destinations.http import (
    Action,
    CallStats,
    PartnerClient,
    Pick,
    RetryPolicy,
    http_status,
)
from cohortsync.outbound.guard import OutboundGuard


@dataclass(frozen=True)
class ConnectorConfig:
    """Everything a connector needs: the account, its settings, and the client's knobs."""

    credentials: Mapping[str, str]
    settings: Mapping[str, Any]
    base_url: str
    project_id: int = 0
    simplified_id_merge: bool = False  # the project's identity mode (partners match on $user_id)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    clock: Clock = field(default_factory=SystemClock)  # the time a request is stamped with
    rng: random.Random = field(default_factory=random.Random)
    transport: httpx.BaseTransport | None = None  # a test's stand-in for the network
    timeout: float = 30.0  # each try of a request, from connecting to the reply's last byte
    guard: OutboundGuard = field(default_factory=OutboundGuard)  # private addresses refused
    # Each account's concurrency cap and rates: in this process, or shared through PostgreSQL.
    budgets: BudgetSource = account_budget

    def client(
        self,
        partner: str,
        capabilities: Capabilities,
        account: str,
        headers: Mapping[str, str],
        describe: Pick,
        overrides: Mapping[int, Action] | None = None,
        status_of: Callable[[httpx.Response], int] | None = None,
    ) -> PartnerClient:
        """The shared HTTP client for this account (its budget shared with every other sync of
        the same account); ``describe`` finds the partner's message in an error body,
        ``status_of`` reads the status a reply stands for where the partner puts it in the body."""
        return PartnerClient(
            partner=partner,
            base_url=self.base_url,
            headers=headers,
            secrets=list(self.credentials.values()),
            budget=self.budgets(partner, account, capabilities, timeout=self.timeout),
            overrides=overrides or {},
            describe=describe,
            status_of=status_of or http_status,
            retry=self.retry,
            timeout=self.timeout,
            sleep=self.sleep,
            clock=self.clock,
            rng=self.rng,
            transport=self.transport,
            guard=self.guard,
        )


class HttpConnector:
    """What every HTTP connector shares: its client, call counters, run hook and close."""

    _http: PartnerClient

    @property
    def stats(self) -> CallStats:
        """Requests, retries, 429s, 5xx and timeouts seen by this connector."""
        return self._http.stats

    def begin_run(self, run: RunInfo) -> None:
        """Most partners need no announcement: each call stands alone."""

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()
