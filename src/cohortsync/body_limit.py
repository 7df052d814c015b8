"""How much of a request body the server takes: one limit, refused with one message, whether the
size is declared (``Content-Length``) or only seen as the body arrives."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from cohortsync.domain.errors import PayloadTooLarge


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """At most ``limit`` bytes of body; more is PayloadTooLarge saying ``message``."""

    limit: int
    message: str

    def refuse_declared(self, request: Request) -> None:
        """Refuse a request whose declared ``Content-Length`` is over the limit, before any of
        its body is received."""
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.limit:
            raise PayloadTooLarge(self.message)

    def refuse(self, size: int) -> None:
        """Refuse ``size`` bytes received if they are over the limit."""
        if size > self.limit:
            raise PayloadTooLarge(self.message)

    async def read(self, request: Request) -> bytes:
        """The raw body, never holding more than the limit of it."""
        self.refuse_declared(request)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            self.refuse(size)
            chunks.append(chunk)
        return b"".join(chunks)
