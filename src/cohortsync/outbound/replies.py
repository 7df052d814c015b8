"""Replies read with a cap: a buffered reply is refused past its size limit, an error reply is
read only as far as its message needs, and a streamed text reply is split into lines no longer
than a limit (httpx would buffer a line of any length). Bodies are decoded a bounded piece at a
time (:mod:`.encodings`), so the caps hold for the decoded size, whatever the compression."""

from __future__ import annotations

import codecs
from collections.abc import Iterator

import httpx

from cohortsync.domain.errors import CohortsyncError
from cohortsync.outbound.encodings import ReplyUnreadable, decoded

__all__ = ["ReplyTooLarge", "ReplyUnreadable", "buffered", "lines", "read_at_most", "with_body"]

# Set by the transport for the body as sent; the rebuilt reply holds it decoded.
_DECODED = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class ReplyTooLarge(CohortsyncError):
    """A reply (or one line of it) was longer than the caller reads."""

    code = "reply_too_large"


def read_at_most(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of the decoded body of a streamed reply, and whether there was
    more; the reply is closed. :class:`ReplyUnreadable` for an encoding that is not read."""
    body = bytearray()
    over = False
    try:
        for chunk in decoded(response):
            room = limit - len(body)
            if len(chunk) > room:
                body += chunk[:room]
                over = True
                break
            body += chunk
    finally:
        response.close()
    return bytes(body), over


def with_body(response: httpx.Response, body: bytes) -> httpx.Response:
    """A streamed reply as a read one, holding ``body`` (its status, headers and request)."""
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _DECODED]
    return httpx.Response(
        response.status_code, headers=headers, content=body, request=response.request
    )


def buffered(response: httpx.Response, limit: int) -> httpx.Response:
    """A streamed reply read whole, or :class:`ReplyTooLarge` past ``limit`` bytes."""
    body, over = read_at_most(response, limit)
    if over:
        raise ReplyTooLarge(f"the reply is longer than {limit} bytes")
    return with_body(response, body)


def lines(response: httpx.Response, max_line: int) -> Iterator[str]:
    """The lines of a streamed text reply as they arrive (``\\n`` or ``\\r\\n`` ended), or
    :class:`ReplyTooLarge` for a line longer than ``max_line`` characters."""
    text_of = codecs.getincrementaldecoder(response.encoding or "utf-8")(errors="replace")
    pending = ""
    for chunk in decoded(response):
        pending += text_of.decode(chunk)
        *complete, pending = pending.split("\n")
        for line in complete:
            yield line.removesuffix("\r")
        if len(pending) > max_line:
            raise ReplyTooLarge(f"a line of the reply is longer than {max_line} characters")
    pending += text_of.decode(b"", final=True)
    if pending:
        yield pending.removesuffix("\r")
