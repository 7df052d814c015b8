"""Mixpanel-compatible ingestion endpoints: /track, /engage, /groups, /import (R-ING-1).

Replies are what the SDKs expect: ``1``/``0``, or ``{"status": 1|0, "error": …}`` with
``verbose=1``; ``/import?strict=1`` replies in the documented strict form with failed_records.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from cohortsync.api.deps import get_state
from cohortsync.api.errors import status_for
from cohortsync.domain.accounts import Project
from cohortsync.domain.errors import AuthenticationError, CohortsyncError, PayloadTooLarge
from cohortsync.domain.events import MAX_REQUEST_BYTES
from cohortsync.ingest.body import DecodedBody, decode_body
from cohortsync.ingest.results import IngestResult
from cohortsync.metrics import RECORDS_IN

router = APIRouter(tags=["ingestion"])

# Ingestion is CPU-bound Python: one worker thread per process does it. More threads only fight
# over the GIL (measured: 8 threads ingest at ~40 % of the speed of one), and SQLite takes one
# writer at a time anyway. Scale out with more processes (COHORTSYNC_WORKERS) instead.
_INGEST_SLOT = CapacityLimiter(1)
P = ParamSpec("P")
T = TypeVar("T")


async def in_ingest_thread(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``function`` on the ingestion worker thread, off the event loop."""
    return await anyio.to_thread.run_sync(
        functools.partial(function, *args, **kwargs), limiter=_INGEST_SLOT
    )


async def read_body(request: Request, limit: int = MAX_REQUEST_BYTES) -> bytes:
    """The raw body, refusing more than ``limit`` bytes as sent."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge("body is larger than 10 MB; send at most 2,000 records a request")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("body is larger than 10 MB; send at most 2,000 records a request")
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(request: Request, raw: bytes) -> DecodedBody:
    return decode_body(
        raw,
        request.headers.get("content-type", ""),
        request.headers.get("content-encoding", ""),
    )


def _flag(request: Request, form: dict[str, str], name: str) -> str | None:
    return request.query_params.get(name, form.get(name))


def _legacy_reply(
    verbose: bool, status: int, result: IngestResult | None, error: str | None
) -> Response:
    ok = error is None
    if not verbose:
        return PlainTextResponse("1" if ok else "0", status_code=status)
    body: dict[str, Any] = {"status": 1 if ok else 0, "error": error}
    if result is not None:
        body["num_records_imported"] = result.imported
        if result.failed:
            body["failed_records"] = [f.as_json() for f in result.failed]
    return JSONResponse(body, status_code=status)


def _count(request: Request, result: IngestResult) -> None:
    """Count what the endpoint stored (``cohortsync_records_ingested``)."""
    RECORDS_IN.labels(request.url.path.rstrip("/").rsplit("/", 1)[-1]).inc(result.imported)


async def _legacy(request: Request, handle: Callable[[DecodedBody], IngestResult]) -> Response:
    form: dict[str, str] = {}

    def work(raw: bytes) -> IngestResult:
        decoded = _decode(request, raw)
        form.update(decoded.form)
        return handle(decoded)

    try:
        result = await in_ingest_thread(work, await read_body(request))
    except CohortsyncError as exc:
        verbose = _flag(request, form, "verbose") == "1"
        return _legacy_reply(verbose, status_for(exc), None, exc.message)
    _count(request, result)
    verbose = _flag(request, form, "verbose") == "1"
    if result.failed:
        return _legacy_reply(verbose, 400, result, result.summary())
    return _legacy_reply(verbose, 200, result, None)


@router.post("/track", summary="Track recent events (project token in each event)")
async def track(request: Request) -> Response:
    """Events from client SDKs; older than five days are refused (use /import)."""
    service = get_state(request).ingestion
    return await _legacy(request, lambda body: service.track(body.records))


@router.post("/engage", summary="Update user profiles")
async def engage(request: Request) -> Response:
    """Profile updates ($set, $set_once, $add, $append, $union, $remove, $unset, $delete)."""
    service = get_state(request).ingestion
    return await _legacy(request, lambda body: service.engage(body.records))


@router.post("/groups", summary="Update group profiles")
async def groups(request: Request) -> Response:
    """Group profile updates."""
    service = get_state(request).ingestion
    return await _legacy(request, lambda body: service.groups(body.records))


def _basic_credentials(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise AuthenticationError(
            "/import needs HTTP Basic auth: service account user:secret with ?project_id=, "
            "or the project's API secret as the username"
        )
    try:
        username, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationError("the Basic credentials are not valid base64") from None
    return username, password


def _import_project(request: Request) -> Project:
    username, password = _basic_credentials(request)
    return get_state(request).ingestion.authenticate_import(
        username, password, request.query_params.get("project_id")
    )


def _strict_reply(status: int, result: IngestResult | None, error: str | None) -> JSONResponse:
    labels = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 413: "Payload Too Large"}
    body: dict[str, Any] = {"code": status, "status": labels.get(status, "Error")}
    if error is not None:
        body["error"] = error
    if result is not None:
        body["num_records_imported"] = result.imported
        if result.failed:
            body["failed_records"] = [f.as_json() for f in result.failed]
    return JSONResponse(body, status_code=status)


@router.post("/import", summary="Import events of any age (service account or API secret)")
async def import_events(request: Request) -> Response:
    """Batch import; ``strict=1`` reports each invalid record and stores the valid rest."""
    state = get_state(request)
    strict = request.query_params.get("strict")
    if strict is None:

        def handle(body: DecodedBody) -> IngestResult:
            return state.ingestion.import_events(_import_project(request), body.records)

        return await _legacy(request, handle)

    try:
        project = await in_ingest_thread(_import_project, request)
        batch, now = await state.ingestion.prepare_import(
            project,
            await read_body(request),
            request.headers.get("content-type", ""),
            request.headers.get("content-encoding", ""),
        )
        result = await in_ingest_thread(state.ingestion.store_import, project, batch, now)
        _count(request, result)
    except CohortsyncError as exc:
        return _strict_reply(status_for(exc), None, exc.message)
    if result.failed and strict != "0":
        return _strict_reply(400, result, "some data points in the request failed validation")
    return _strict_reply(200, result, None)
