"""A compressed partner reply is capped by its decoded size while it is decoded (red team,
finding 4): a few hundred bytes of gzip or brotli that decode to hundreds of MiB are refused
with the size error, and no more than about the cap is ever held. Partners are asked for gzip or
deflate only; an encoding that cannot be decoded a bounded piece at a time is refused."""

from __future__ import annotations

import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cohortsync.destinations.connection import ConnectorConfig
from cohortsync.destinations.errors import PartnerConfigError, TransientError
from cohortsync.destinations.http import PartnerClient, RetryPolicy
from cohortsync.outbound.guard import OutboundGuard
from cohortsync.partners.webhook.destination import WebhookDestination
from cohortsync.sandbox.server import RunningServer, start
from tests.destinations.conftest import loopback_client

brotli = pytest.importorskip("brotli")

MIB = 1024 * 1024
BOMB_MIB = 256  # decoded: far past any cap, so a reader that decodes whole chunks holds it
HELD_AT_MOST = 48 * MIB  # the 16 MiB cap, its copy and a few pieces; a bomb's chunk is more


def gzip_bomb(mib: int) -> bytes:
    """A valid gzip body of ``mib`` MiB of zeros, about 1 KiB a MiB (one fully flushed deflate
    block of a MiB, repeated: each decodes alone)."""
    zeros = bytes(MIB)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = crc.to_bytes(4, "little") + (mib * MIB % 2**32).to_bytes(4, "little")
    return header + block * mib + deflate.flush() + trailer


def brotli_bomb(mib: int) -> bytes:
    """A brotli body of ``mib`` MiB of spaces (a few hundred bytes)."""
    compressor = brotli.Compressor(quality=4)
    spaces = b" " * MIB
    return b"".join([compressor.process(spaces) for _ in range(mib)] + [compressor.finish()])


BOMBS = {"gzip": gzip_bomb(BOMB_MIB), "br": brotli_bomb(BOMB_MIB)}


def bomb(status: int) -> Callable[[Request], Any]:
    async def reply(request: Request) -> Response:
        coding = request.path_params["coding"]
        body = BOMBS.get(coding, b"(zstd frame)")
        headers = {"Content-Encoding": coding}
        return Response(body, status, headers=headers, media_type="application/json")

    return reply


async def accepted(request: Request) -> Response:
    return JSONResponse({"accept_encoding": request.headers.get("accept-encoding")})


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    routes = [
        Route("/ok/{coding}", bomb(200), methods=["GET", "POST"]),
        Route("/failed/{coding}", bomb(500)),
        Route("/accepted", accepted),
    ]
    running = start(Starlette(routes=routes))
    yield running
    running.stop()


def client(server: RunningServer, max_reply_bytes: int = 16 * MIB) -> closing[PartnerClient]:
    return loopback_client(server.url, partner="partner", max_reply_bytes=max_reply_bytes)


def peak_while(call: Callable[[], object]) -> tuple[BaseException | None, int]:
    """What ``call`` raised, and the most memory Python held while it ran."""
    tracemalloc.start()
    try:
        call()
        raised: BaseException | None = None
    except Exception as error:
        raised = error
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return raised, peak


@pytest.mark.parametrize("coding", ["gzip", "br"])
def test_a_compressed_reply_is_capped_by_its_decoded_size(
    server: RunningServer, coding: str
) -> None:
    assert len(BOMBS[coding]) < BOMB_MIB * 1100
    with client(server) as partner:
        raised, peak = peak_while(lambda: partner.request("GET", f"/ok/{coding}"))
    assert isinstance(raised, PartnerConfigError)
    assert raised.message == f"partner: the reply is longer than {16 * MIB} bytes"
    assert peak < HELD_AT_MOST


@pytest.mark.parametrize("coding", ["gzip", "br"])
def test_a_connection_check_answered_by_a_bomb_fails_with_the_size_error(
    server: RunningServer, coding: str
) -> None:
    url = f"{server.url}/ok/{coding}"
    config = ConnectorConfig(
        credentials={},
        settings={"url": url},
        base_url=url,
        retry=RetryPolicy(attempts=1),
        guard=OutboundGuard(allow_private=True),
    )
    with closing(WebhookDestination(config)) as webhook:
        raised, peak = peak_while(webhook.check)
    assert isinstance(raised, PartnerConfigError)
    assert "the reply is longer than" in raised.message
    assert peak < HELD_AT_MOST


@pytest.mark.parametrize("coding", ["gzip", "br"])
def test_a_bomb_of_a_streamed_list_is_refused_by_its_line_cap(
    server: RunningServer, coding: str
) -> None:
    with client(server) as partner:
        raised, peak = peak_while(lambda: list(partner.lines(f"/ok/{coding}")))
    assert isinstance(raised, PartnerConfigError)
    assert "a line of the reply is longer than" in raised.message
    assert peak < HELD_AT_MOST


def test_a_bomb_as_an_error_reply_is_told_by_its_status(server: RunningServer) -> None:
    with client(server) as partner, pytest.raises(TransientError) as failed:
        partner.request("GET", "/failed/br")
    assert failed.value.message == "HTTP 500"


def test_an_encoding_that_cannot_be_bounded_is_refused(server: RunningServer) -> None:
    with client(server) as partner, pytest.raises(PartnerConfigError) as refused:
        partner.request("GET", "/ok/zstd")
    assert refused.value.message == (
        "partner: the reply is encoded as 'zstd', which is not read (send gzip or deflate)"
    )


def test_partners_are_asked_for_gzip_or_deflate_only(server: RunningServer) -> None:
    with client(server) as partner:
        asked = partner.request("GET", "/accepted").json()
    assert asked == {"accept_encoding": "gzip, deflate"}
