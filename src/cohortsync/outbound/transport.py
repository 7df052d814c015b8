"""An httpx transport whose every connection passes the :class:`OutboundGuard`: the network
backend resolves and checks the host, then connects to the checked address (the Host header
and the TLS server name stay the URL's host, as httpx sets them). Redirects need no care of
their own: each hop is a new connection and is checked the same way.

A request made inside :func:`deadline_at` also has a total time: every connect, TLS handshake,
read and write is given at most what is left of it (httpx's own timeouts count per read, so a
reply dripping a byte at a time would never time out)."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import TypeVar, cast

import httpcore
import httpx

from cohortsync.outbound.guard import OutboundGuard

_Item = TypeVar("_Item")
_END = object()
_deadline: ContextVar[float | None] = ContextVar("outbound_deadline", default=None)


@contextmanager
def deadline_at(end: float) -> Iterator[float]:
    """Network reads and writes inside the block end by ``end`` (on ``time.monotonic``), or
    by an outer deadline that ends sooner; gives the deadline that holds."""
    outer = _deadline.get()
    end = end if outer is None else min(outer, end)
    token = _deadline.set(end)
    try:
        yield end
    finally:
        _deadline.reset(token)


def read_by(end: float, items: Iterator[_Item]) -> Iterator[_Item]:
    """``items`` (read from a streamed reply) by its total deadline ``end``: each network read
    is given only what is left (the deadline set while reading, never while the caller holds
    an item), and the time is checked between items too; ``httpx.ReadTimeout`` once it passed."""
    while True:
        if time.monotonic() >= end:
            raise httpx.ReadTimeout("the reply's total deadline passed")
        with deadline_at(end):
            item = next(items, _END)
        if item is _END:
            return
        yield cast(_Item, item)


def _left(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` cut to what is left of the deadline; ``expired`` once nothing is."""
    end = _deadline.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise expired("the request's total deadline passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation ends by the deadline of the request using it."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read, within the deadline."""
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Write, within the deadline."""
        self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        """Close the connection."""
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        """The TLS handshake (SNI: the URL's host), within the deadline."""
        left = _left(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> object:
        """What the underlying connection says about itself."""
        return self._stream.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Connects only to addresses the guard checked (no Unix sockets)."""

    def __init__(self, guard: OutboundGuard) -> None:
        self._guard = guard
        self._system = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Resolve and check ``host``, then connect to the first checked address that
        answers."""
        try:
            addresses = self._guard.addresses(host, port)
        except OSError as error:
            raise httpcore.ConnectError(f"{host} could not be resolved") from error
        failure: Exception = httpcore.ConnectError(f"{host} could not be reached")
        for address in addresses:
            try:
                left = _left(timeout, httpcore.ConnectTimeout)
                stream = self._system.connect_tcp(
                    address, port, left, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
                continue
            return DeadlineStream(stream)
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Never: a partner is reached over TCP."""
        raise httpcore.ConnectError("unix sockets are not outbound endpoints")

    def sleep(self, seconds: float) -> None:
        """Wait (httpcore's retries; none are configured)."""
        time.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's HTTP transport over the :class:`GuardedBackend` (no proxies from the
    environment: a proxy would make the checked address the proxy's)."""

    def __init__(self, guard: OutboundGuard) -> None:
        context = _tls_context()
        super().__init__(verify=context)
        # the pool httpx builds, but connecting through the guard
        self._pool = httpcore.ConnectionPool(
            ssl_context=context, network_backend=GuardedBackend(guard)
        )


@cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS settings (certifi's roots), made once: loading them takes a while,
    and one context serves every connection."""
    return httpx.create_ssl_context()
