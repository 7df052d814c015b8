"""How much of a request body the server takes: one limit, refused with one message, whether the
size is declared (``Content-Length``) or only seen as the body arrives; and the app-wide cap on
every request's body, counted on the stream before auth and before any parsing."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


Answer = Callable[[Request, str], Response]


@dataclass(frozen=True, slots=True)
class RouteCap:
    """Requests whose path matches ``pattern`` (a full match) carry at most ``limit``; over it
    they are answered by ``answer`` (the uniform JSON error, or the page's notice)."""

    pattern: str
    limit: BodyLimit
    answer: Answer

    def matches(self, path: str) -> bool:
        """Whether ``path`` is one of this cap's routes."""
        return re.fullmatch(self.pattern, path) is not None


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class StreamCap:
    """ASGI middleware counting the body bytes of every request as they arrive, before auth and
    before any parsing: the first cap of ``caps`` whose pattern matches the path applies (the
    last one should match every path), and as soon as the count passes it the request is
    answered 413 and what the app would still receive or send is dropped. A declared
    ``Content-Length`` over the cap is refused before any of the body is read."""

    def __init__(self, app: ASGIApp, caps: Sequence[RouteCap]) -> None:
        self.app = app
        self.caps = tuple(caps)

    def cap_for(self, path: str) -> RouteCap | None:
        """The cap of the requests to ``path`` (None: no cap)."""
        return next((cap for cap in self.caps if cap.matches(path)), None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on while its body stays within its cap; else answer 413."""
        cap = self.cap_for(scope.get("path", "")) if scope["type"] == "http" else None
        if cap is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            cap.limit.refuse_declared(request)
        except PayloadTooLarge as refusal:
            await cap.answer(request, refusal.message)(scope, _no_body, send)
            return
        received = 0
        refused = started = False

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap.limit.limit:
                    refused = True
                    if not started:
                        reply = cap.answer(request, cap.limit.message)
                        await reply(scope, _no_body, send)
                    return {"type": "http.disconnect"}
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except Exception:
            if not refused:  # the app failed because its body was cut off: already answered
                raise
