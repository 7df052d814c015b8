"""Partner replies are read with a total deadline and a size cap (issue 15, finding 18), a
streamed list's lines by that deadline too (red team, finding 11), and an error reply's body is
never repeated in the message (finding 1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import closing

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from cohortsync.destinations.errors import PartnerConfigError, TransientError
from cohortsync.destinations.http import (
    MAX_REPLY_BYTES,
    PartnerClient,
)
from cohortsync.sandbox.server import RunningServer, start
from tests.destinations.conftest import loopback_client


async def drip(request: Request) -> Response:
    """One byte every 50 ms for 10 s: each read is quick, the whole reply is not."""

    async def body() -> AsyncIterator[bytes]:
        for _ in range(200):
            yield b" "
            await asyncio.sleep(0.05)

    return StreamingResponse(body(), media_type="application/json")


async def slow_lines(request: Request) -> Response:
    """A user id every 100 ms for 4 s: each line is quick, the whole list is not."""

    async def body() -> AsyncIterator[bytes]:
        for number in range(40):
            yield f"user-{number}\n".encode()
            await asyncio.sleep(0.1)

    return StreamingResponse(body(), media_type="text/csv")


async def big(request: Request) -> Response:
    return PlainTextResponse("x" * 65_536)


async def page(request: Request) -> Response:
    return PlainTextResponse("<h1>internal admin console</h1>", status_code=400)


async def endless_line(request: Request) -> Response:
    return PlainTextResponse("y" * 200_000)


async def line_list(request: Request) -> Response:
    return PlainTextResponse("user-0\r\n\r\nuser-1")


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    routes = [
        Route("/drip", drip),
        Route("/slow-lines", slow_lines),
        Route("/big", big),
        Route("/page", page),
        Route("/line", endless_line),
        Route("/line-list", line_list),
    ]
    running = start(Starlette(routes=routes))
    yield running
    running.stop()


def client(
    server: RunningServer, timeout: float = 5.0, max_reply_bytes: int = MAX_REPLY_BYTES
) -> closing[PartnerClient]:
    return loopback_client(server.url, timeout=timeout, max_reply_bytes=max_reply_bytes)


def test_a_reply_dripping_past_the_deadline_times_out(server: RunningServer) -> None:
    with client(server, timeout=0.5) as dripped:
        with pytest.raises(TransientError, match="webhook did not answer in time"):
            dripped.request("GET", "/drip")
        assert dripped.stats.timeouts == 1


def test_a_streamed_list_dripping_past_the_deadline_times_out(server: RunningServer) -> None:
    with client(server, timeout=0.5) as dripped:
        with pytest.raises(TransientError, match="webhook did not finish its reply in time"):
            for _ in dripped.lines("/slow-lines"):
                pass
        assert dripped.stats.timeouts == 1


def test_a_streamed_list_within_the_deadline_is_read_whole(server: RunningServer) -> None:
    with client(server, timeout=10.0) as listed:
        assert list(listed.lines("/line-list")) == ["user-0", "user-1"]


def test_a_reply_over_the_cap_is_refused(server: RunningServer) -> None:
    over = pytest.raises(PartnerConfigError, match="longer than 4096 bytes")
    with client(server, max_reply_bytes=4096) as capped, over:
        capped.request("GET", "/big")
    with client(server) as roomy:
        assert len(roomy.request("GET", "/big").content) == 65_536


def test_a_streamed_line_over_the_cap_is_refused(server: RunningServer) -> None:
    with client(server) as streamed, pytest.raises(PartnerConfigError, match="a line"):
        list(streamed.lines("/line"))


def test_an_error_reply_is_told_by_its_status_never_its_body(server: RunningServer) -> None:
    with client(server) as refused, pytest.raises(PartnerConfigError) as error:
        refused.request("GET", "/page")
    assert error.value.message == "HTTP 400"
