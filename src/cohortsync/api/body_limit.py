"""Reading a request body without holding more than a limit of it."""

from __future__ import annotations

from fastapi import Request

from cohortsync.domain.errors import PayloadTooLarge


async def read_capped(request: Request, limit: int, advice: str) -> bytes:
    """The raw body; more than ``limit`` bytes (declared or as sent) is PayloadTooLarge, whose
    message ends with ``advice``."""
    message = f"body is larger than {limit:,} bytes; {advice}"
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(message)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(message)
        chunks.append(chunk)
    return b"".join(chunks)
