"""A reply's body decoded from its ``Content-Encoding`` a bounded piece at a time.

httpx decodes each raw chunk whole, so a few hundred compressed bytes can become gigabytes
before a size cap sees them. Here every decoding step (gzip and deflate through zlib, brotli
where its library can bound its output) gives at most :data:`PIECE` bytes per step, lazily, so
a reader that stops at its cap holds no more than the cap and one piece. An encoding that
cannot be bounded (zstd, compress, anything unknown) is refused. Partners are asked for
:data:`ACCEPTED` only: a compliant one never sends the others.
"""

from __future__ import annotations

import importlib
import itertools
import zlib
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import Any

import httpx

from cohortsync.domain.errors import CohortsyncError

PIECE = 64 * 1024  # the most one decoding step gives
ACCEPTED = "gzip, deflate"  # the Accept-Encoding sent to partners


class ReplyUnreadable(CohortsyncError):
    """A reply's body is in an encoding that is not read, or is broken in its encoding."""

    code = "reply_unreadable"


def decoded(response: httpx.Response) -> Iterator[bytes]:
    """The body of a streamed reply, decoded from its ``Content-Encoding`` (applied in the
    order listed, so undone last to first), in pieces of at most :data:`PIECE` bytes. A reply
    already read (a test transport's) is held decoded already, and given as it is."""
    try:
        held = response.content
    except httpx.ResponseNotRead:
        pass
    else:
        return iter([held[at : at + PIECE] for at in range(0, len(held), PIECE)])
    pieces: Iterator[bytes] = response.iter_raw()
    for coding in reversed(_codings(response)):
        pieces = _decoder(coding)(pieces)
    return pieces


def _codings(response: httpx.Response) -> list[str]:
    values = response.headers.get_list("content-encoding", split_commas=True)
    return [v.strip().lower() for v in values if v.strip().lower() not in ("", "identity")]


def _decoder(coding: str) -> Callable[[Iterator[bytes]], Iterator[bytes]]:
    if coding in ("gzip", "x-gzip"):
        return lambda pieces: _inflated(pieces, 47, coding)  # gzip, or zlib sent as gzip
    if coding == "deflate":
        return _deflated
    if coding == "br" and _brotli() is not None:
        return _unbrotlied
    raise ReplyUnreadable(
        f"the reply is encoded as {coding!r}, which is not read (send gzip or deflate)"
    )


def _inflated(pieces: Iterable[bytes], wbits: int, coding: str) -> Iterator[bytes]:
    """zlib's output for ``pieces``, :data:`PIECE` bytes at most per step (input it could not
    take yet waits in ``unconsumed_tail``); what follows the end of the stream is ignored."""
    inflater = zlib.decompressobj(wbits)
    for piece in pieces:
        data = piece
        while not inflater.eof:
            try:
                out = inflater.decompress(data, PIECE)
            except zlib.error:
                raise ReplyUnreadable(f"the reply's {coding} body is broken") from None
            data = inflater.unconsumed_tail
            if out:
                yield out
            if not data and len(out) < PIECE:
                break  # this piece is used up and nothing is held back
        if inflater.eof:
            return


def _deflated(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """``deflate`` as sent: zlib-wrapped as the standard says, or raw as some servers do
    (told apart by the zlib header's check bits, like httpx does by trying)."""
    first = next((p for p in pieces if p), b"")
    wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and ((first[0] << 8) | first[1]) % 31 == 0
    yield from _inflated(itertools.chain([first], pieces), 15 if wrapped else -15, "deflate")


@cache
def _brotli() -> Any:
    """The brotli module if one that bounds its output is installed (1.2 and later), else None."""
    try:
        module = importlib.import_module("brotli")
    except ImportError:
        return None
    return module if hasattr(module.Decompressor(), "can_accept_more_data") else None


def _unbrotlied(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """brotli's output for ``pieces``, about :data:`PIECE` bytes at most per step (its output
    buffer stops growing there): what a piece holds is drained before the next is read."""
    brotli = _brotli()
    decompressor = brotli.Decompressor()
    try:
        for data in pieces:
            out: bytes = decompressor.process(data, output_buffer_limit=PIECE)
            while out:
                yield out
                if decompressor.is_finished():
                    return
                out = decompressor.process(b"", output_buffer_limit=PIECE)
    except brotli.error:
        raise ReplyUnreadable("the reply's br body is broken") from None
