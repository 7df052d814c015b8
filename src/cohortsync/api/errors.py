"""Error responses: ``{"error": {"code", "message"}}`` with a 4xx/5xx status, for every failure."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cohortsync.domain.errors import OUTAGE_RETRY_SECONDS, CohortsyncError, status_for
from cohortsync.security_headers import guarded

log = logging.getLogger(__name__)


def error_response(
    status: int,
    code: str,
    message: str,
    path: str | None = None,
    retry_after_seconds: int | None = None,
) -> JSONResponse:
    """The uniform error body (with the JSON path of the problem, where there is one)."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after_seconds is not None:
        headers["Retry-After"] = str(retry_after_seconds)
    error: dict[str, str] = {"code": code, "message": message}
    if path is not None:
        error["path"] = path
    return JSONResponse({"error": error}, status_code=status, headers=headers or None)


class RetryAfterOn503:
    """Every 503 says when to come back: a reply without ``Retry-After`` (an ingestion
    endpoint's own reply format) gets the database outage's default."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the header to a 503 that lacks it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 503:
                headers = MutableHeaders(scope=message)
                if "retry-after" not in headers:
                    headers["Retry-After"] = str(OUTAGE_RETRY_SECONDS)
            await send(message)

        await self.app(scope, receive, sending)


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors and HTTP errors to the uniform body; a database
    outage answers 503 with Retry-After."""
    app.add_middleware(RetryAfterOn503)

    @app.exception_handler(CohortsyncError)
    async def _domain(_request: Request, exc: CohortsyncError) -> JSONResponse:
        return error_response(
            status_for(exc),
            exc.code,
            exc.message,
            getattr(exc, "path", None),
            exc.retry_after_seconds,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for item in exc.errors():
            where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
            parts.append(f"{where}: {item.get('msg', 'invalid')}")
        return error_response(400, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # answered by Starlette's error handler, outside every middleware: the security
        # headers are added here
        log.exception("unhandled error", exc_info=exc)
        reply = error_response(500, "internal_error", "internal error; see the server log")
        return guarded(reply, request.scope)
