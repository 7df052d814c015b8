"""Mixpanel-compatible ingestion endpoints: /track, /engage, /groups, /import (R-ING-1).

Replies are what the SDKs expect: ``1``/``0``, or ``{"status": 1|0, "error": …}`` with
``verbose=1``, or a 1x1 GIF with ``img=1``; ``/import?strict=1`` replies in the documented strict
form with failed_records. Web pages call /track, /engage and /groups from their own origin
(mixpanel-browser, with a trailing slash): :class:`BrowserCors` lets them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cohortsync.api.errors import error_response
from cohortsync.app_state import get_state
from cohortsync.body_limit import BodyLimit
from cohortsync.client_address import client_address
from cohortsync.domain.accounts import Project
from cohortsync.domain.errors import (
    AuthenticationError,
    CohortsyncError,
    status_for,
)
from cohortsync.domain.events import MAX_REQUEST_BYTES
from cohortsync.ingest.admission import request_cost
from cohortsync.ingest.body import DecodedBody, decode_body
from cohortsync.ingest.results import IngestResult
from cohortsync.ingest.storable import NUL
from cohortsync.metrics import RECORDS_IN
from cohortsync.services.ingestion import Kind, Routed

router = APIRouter(tags=["ingestion"])

# The transparent 1x1 GIF Mixpanel answers ``img=1`` with (a tracking pixel's reply).
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {"Cache-Control": "no-cache, no-store, must-revalidate"}
_FORM = "application/x-www-form-urlencoded"

# Ingestion is CPU-bound Python: one thread per process decodes and stores, in fair turns
# (cohortsync.ingest.admission). More threads only fight over the GIL (measured: 8 threads ingest
# at ~40 % of the speed of one), and SQLite takes one writer at a time anyway. Scale out with
# more processes (COHORTSYNC_WORKERS) instead.
T = TypeVar("T")


async def _decoded(request: Request, sender: Hashable, decode: Callable[[], T]) -> T:
    """Run ``decode`` on the ingestion thread in ``sender``'s turn."""
    return await get_state(request).ingestion.admission.thread.run(("from", sender), decode)


async def _stored(
    request: Request, routed: Routed, store: Callable[[], IngestResult]
) -> IngestResult:
    """Charge ``routed``'s records to their projects' rate limits, then ``store`` them in their
    turn of the writer."""
    admission = get_state(request).ingestion.admission
    admission.thread.check(routed.projects)  # refused there, nothing is charged
    admission.charge(routed.costs())
    return await admission.thread.run(routed.projects, store)


def _sender(request: Request) -> str:
    """Who sent a request, for the decoders' turns: the client's address."""
    return client_address(request, get_state(request).settings.trust_proxy) or ""


def _refusal(exc: CohortsyncError) -> tuple[int, dict[str, str]]:
    """The status of a refusal, and its ``Retry-After`` when it has one."""
    status = status_for(exc)
    wait = exc.retry_after_seconds
    return status, {} if wait is None else {"Retry-After": str(wait)}


INGEST_BODY = BodyLimit(
    MAX_REQUEST_BYTES, "body is larger than 10 MB; send at most 2,000 records a request"
)


@dataclass(frozen=True, slots=True)
class _Sent:
    """What a request to a legacy endpoint carries: the raw records, with how they are encoded."""

    raw: bytes
    content_type: str
    content_encoding: str = ""

    def decode(self) -> DecodedBody:
        """The records and form fields."""
        return decode_body(self.raw, self.content_type, self.content_encoding)


async def _sent(request: Request) -> _Sent:
    """The body as sent; for GET (tracking pixels) the query string, a form with ``data=``.

    ``navigator.sendBeacon`` (mixpanel-browser flushing its queue as a page hides) posts the
    SDK's form body as ``text/plain``: a body starting ``data=`` is read as the form it is.
    """
    if request.method == "GET":
        return _Sent(request.url.query.encode(), _FORM)
    raw = await INGEST_BODY.read(request)
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() == "text/plain" and raw.startswith(b"data="):
        content_type = _FORM
    return _Sent(raw, content_type, request.headers.get("content-encoding", ""))


def _flag(request: Request, form: dict[str, str], name: str) -> str | None:
    return request.query_params.get(name, form.get(name))


def _legacy_reply(
    request: Request,
    form: dict[str, str],
    status: int,
    result: IngestResult | None,
    error: str | None,
    headers: dict[str, str] | None = None,
) -> Response:
    ok = error is None
    if _flag(request, form, "img") == "1":
        pixel_headers = {**_NO_STORE, **(headers or {})}
        return Response(
            PIXEL_GIF, status_code=status, media_type="image/gif", headers=pixel_headers
        )
    verbose = _flag(request, form, "verbose") == "1"
    if not verbose:
        return PlainTextResponse("1" if ok else "0", status_code=status, headers=headers)
    body: dict[str, Any] = {"status": 1 if ok else 0, "error": error}
    if result is not None:
        body["num_records_imported"] = result.imported
        if result.failed:
            body["failed_records"] = [f.as_json() for f in result.failed]
    return JSONResponse(body, status_code=status, headers=headers)


def _count(request: Request, result: IngestResult) -> None:
    """Count what the endpoint stored (``cohortsync_records_ingested``)."""
    RECORDS_IN.labels(request.url.path.rstrip("/").rsplit("/", 1)[-1]).inc(result.imported)


async def _legacy(
    request: Request, form: dict[str, str], ingest: Callable[[], Awaitable[IngestResult]]
) -> Response:
    """Reply to a legacy endpoint's request as the SDKs expect (``form`` fills as it is read)."""
    try:
        result = await ingest()
    except CohortsyncError as exc:
        status, headers = _refusal(exc)
        return _legacy_reply(request, form, status, None, exc.message, headers)
    _count(request, result)
    if result.failed:
        return _legacy_reply(request, form, 400, result, result.summary())
    return _legacy_reply(request, form, 200, result, None)


async def _by_token(request: Request, kind: Kind) -> Response:
    """/track, /engage, /groups: each record names its project by token."""
    service = get_state(request).ingestion
    form: dict[str, str] = {}

    async def ingest() -> IngestResult:
        sent = await _sent(request)

        def decode() -> Routed:
            decoded = sent.decode()
            form.update(decoded.form)
            return service.route(kind, decoded.records, decoded.size)

        routed = await _decoded(request, _sender(request), decode)
        return await _stored(request, routed, lambda: service.by_token(routed))

    return await _legacy(request, form, ingest)


Endpoint = Callable[[Request], Awaitable[Response]]


def _sdk_endpoint(path: str, summary: str) -> Callable[[Endpoint], Endpoint]:
    """Serve an SDK endpoint at ``path`` by POST (the documented contract) and, as Mixpanel does
    and outside the schema, at ``path/`` (mixpanel-browser's spelling) and by GET (pixels)."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(path, endpoint, methods=["POST"], summary=summary)
        router.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)
        router.add_api_route(f"{path}/", endpoint, methods=["GET", "POST"], include_in_schema=False)
        return endpoint

    return register


@_sdk_endpoint("/track", "Track recent events (project token in each event)")
async def track(request: Request) -> Response:
    """Events from client SDKs; older than five days are refused (use /import)."""
    return await _by_token(request, Kind.TRACK)


@_sdk_endpoint("/engage", "Update user profiles")
async def engage(request: Request) -> Response:
    """Profile updates ($set, $set_once, $add, $append, $union, $remove, $unset, $delete)."""
    return await _by_token(request, Kind.ENGAGE)


@_sdk_endpoint("/groups", "Update group profiles")
async def groups(request: Request) -> Response:
    """Group profile updates."""
    return await _by_token(request, Kind.GROUPS)


def _basic_credentials(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise AuthenticationError(
            "/import needs HTTP Basic auth: service account user:secret with ?project_id=, "
            "or the project's API secret or token as the username"
        )
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationError("the Basic credentials are not valid base64") from None
    if NUL in decoded:
        raise AuthenticationError("wrong /import credentials (they hold a NUL character)")
    username, _, password = decoded.partition(":")
    return username, password


def _import_project(request: Request) -> Project:
    """The project an /import writes to: by service account, API secret or, as Mixpanel
    documents today, the project token as the username with an empty password."""
    username, password = _basic_credentials(request)
    state = get_state(request)
    service = state.ingestion
    project_id = request.query_params.get("project_id")
    try:
        return service.authenticate_import(username, password, project_id)
    except AuthenticationError:
        if password:
            raise
        project = state.projects.by_token(username)
        if project is None or project_id not in (None, str(project.id)):
            raise AuthenticationError(
                "wrong /import credentials (service account, API secret or project token)"
            ) from None
        return project


def _strict_reply(
    status: int,
    result: IngestResult | None,
    error: str | None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    labels = {
        200: "OK",
        400: "Bad Request",
        401: "Unauthorized",
        413: "Payload Too Large",
        429: "Too Many Requests",
    }
    body: dict[str, Any] = {"code": status, "status": labels.get(status, "Error")}
    if error is not None:
        body["error"] = error
    if result is not None:
        body["num_records_imported"] = result.imported
        if result.failed:
            body["failed_records"] = [f.as_json() for f in result.failed]
    return JSONResponse(body, status_code=status, headers=headers)


async def _authenticated(request: Request) -> Project:
    """The /import's project, refused (429) before its body is read while its bucket is empty."""
    project = await anyio.to_thread.run_sync(_import_project, request)
    get_state(request).ingestion.admission.check(project.id)
    return project


async def _import_strict(request: Request) -> IngestResult:
    """Decoded and validated in a helper process where the service has them, then stored."""
    service = get_state(request).ingestion
    project = await _authenticated(request)
    raw = await INGEST_BODY.read(request)
    async with service.admission.helpers.turn(project.id):
        batch, now = await service.prepare_import(
            project,
            raw,
            request.headers.get("content-type", ""),
            request.headers.get("content-encoding", ""),
        )
    service.admission.thread.check((project.id,))
    cost = request_cost(len(batch.rows) + len(batch.failed), len(raw))  # as sent: maybe gzip
    service.admission.charge({project.id: cost})
    return await service.admission.thread.run(
        (project.id,), lambda: service.store_import(project, batch, now)
    )


@router.post("/import", summary="Import events of any age (service account or API secret)")
async def import_events(request: Request) -> Response:
    """Batch import; ``strict=1`` reports each invalid record and stores the valid rest."""
    strict = request.query_params.get("strict")
    if strict is None:
        service = get_state(request).ingestion
        form: dict[str, str] = {}

        async def ingest() -> IngestResult:
            project = await _authenticated(request)
            sent = await _sent(request)

            def decode() -> Routed:
                decoded = sent.decode()
                form.update(decoded.form)
                return Routed.into(project, decoded.records, decoded.size)

            routed = await _decoded(request, ("project", project.id), decode)
            records = [record for _, record in routed.parts[project.id][1]]
            return await _stored(request, routed, lambda: service.import_events(project, records))

        return await _legacy(request, form, ingest)

    try:
        result = await _import_strict(request)
    except CohortsyncError as exc:
        status, headers = _refusal(exc)
        return _strict_reply(status, None, exc.message, headers)
    _count(request, result)
    if result.failed and strict != "0":
        return _strict_reply(400, result, "some data points in the request failed validation")
    return _strict_reply(200, result, None)


# Where web pages send from their own origin: mixpanel-browser calls these with a trailing slash.
BROWSER_PATHS = frozenset(
    spelling for path in ("/track", "/engage", "/groups") for spelling in (path, f"{path}/")
)
_BROWSER_METHODS = "GET, POST, OPTIONS"
# Seconds a browser may reuse a preflight's answer (Chromium caps it at two hours).
PREFLIGHT_MAX_AGE = 7200


def _allow_origin(request_headers: Headers) -> dict[str, str]:
    """The headers letting the requesting page read the reply.

    mixpanel-browser sends ``withCredentials``, so the page's origin is echoed with
    ``Allow-Credentials`` (``*`` is refused for credentialed requests). Ingestion never reads
    cookies (each record's token authenticates it), so credentials give a page nothing more.
    """
    origin = request_headers.get("origin")
    if origin is None:
        return {"Access-Control-Allow-Origin": "*"}
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true"}


def _preflight(request_headers: Headers, allow: dict[str, str]) -> Response:
    headers = {
        **allow,
        "Access-Control-Allow-Methods": _BROWSER_METHODS,
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
        "Allow": _BROWSER_METHODS,
        "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    }
    requested = request_headers.get("access-control-request-headers")
    if requested:
        headers["Access-Control-Allow-Headers"] = requested
    return Response(status_code=204, headers=headers)


class BrowserCors:
    """CORS for /track, /engage and /groups only: preflights answered here, and every reply
    readable by the page that asked, errors included (a reply the page may not read is, to
    mixpanel-browser, a network failure: it drops the batch instead of retrying a 5xx). The
    rest of the service (the API, the web pages) stays same-origin."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer or pass on one request."""
        if scope["type"] != "http" or scope["path"] not in BROWSER_PATHS:
            await self.app(scope, receive, send)
            return
        request_headers = Headers(scope=scope)
        allow = _allow_origin(request_headers)
        if scope["method"] == "OPTIONS":
            await _preflight(request_headers, allow)(scope, receive, send)
            return
        started = False

        async def send_readable(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                headers.update(allow)
                headers.add_vary_header("Origin")
            await send(message)

        try:
            await self.app(scope, receive, send_readable)
        except Exception:
            # The service's error handler answers outside this middleware, without these headers;
            # answer first (it then only logs), so the SDK sees the 500 and retries.
            if not started:
                reply = error_response(500, "internal_error", "internal error; see the server log")
                await reply(scope, receive, send_readable)
            raise
