"""Rendering pages and fragments, and turning service errors into readable messages.

Every web route uses :class:`PageRoute`: a signed-out browser is sent to the login page, and a
service error becomes a message (a page, or for htmx requests a notice swapped into
``#flash``), never a stack trace or a JSON body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from cohortsync.body_limit import BodyLimit
from cohortsync.clock import as_utc
from cohortsync.domain.errors import (
    BatchError,
    CohortsyncError,
    NotFound,
    PermissionDenied,
    status_for,
)
from cohortsync.web.session import LoginRequired

log = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


def _when(moment: datetime | None) -> str:
    return as_utc(moment).strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


def _number(value: int | float | None) -> str:
    return "—" if value is None else f"{value:,}"


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{share:.0%}"


def _every(seconds: float) -> str:
    """A sync interval as people say it: every 15 minutes, every 2 hours."""
    minutes = int(seconds // 60)
    if minutes % 60:
        return f"every {minutes} minutes"
    hours = minutes // 60
    return "every hour" if hours == 1 else f"every {hours} hours"


def public_url(url: str) -> str:
    """A URL fit to show every member: without user-info (``user:pass@``), query string or
    fragment, where credentials and tokens ride."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(not a valid URL)"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


TEMPLATES.env.filters.update(
    when=_when, number=_number, percent=_percent, every=_every, public_url=public_url
)


def is_htmx(request: Request) -> bool:
    """Whether htmx made the request (it swaps a fragment instead of loading a page)."""
    return request.headers.get("HX-Request") == "true"


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A template rendered with ``context``."""
    response: HTMLResponse = TEMPLATES.TemplateResponse(
        request, template, dict(context or {}), status_code=status, headers=headers
    )
    return response


def go_to(request: Request, url: str) -> Response:
    """Send the browser to ``url``: a 303 for a plain form, a client redirect for htmx."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def notice(request: Request, message: str, *, status: int = 200) -> HTMLResponse:
    """A message for the person: into ``#flash`` for htmx, else a page of its own."""
    if is_htmx(request):
        headers = {"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"}
        return render(request, "_flash.html", {"message": message}, status=status, headers=headers)
    return render(request, "error.html", {"message": message}, status=status)


def error_status(request: Request, error: CohortsyncError) -> int:
    """403 and 404 keep their status; other errors the person can correct are shown as a
    message in place (htmx) or a 4xx page."""
    if isinstance(error, PermissionDenied | NotFound) or not is_htmx(request):
        return status_for(error)
    return 200


Endpoint = Callable[..., Any]
_BODY_LIMITS: dict[Endpoint, BodyLimit] = {}


def body_limit(limit: int, message: str) -> Callable[[Endpoint], Endpoint]:
    """Refuse a request to the decorated route whose declared ``Content-Length`` is over
    ``limit`` with a 413 saying ``message``, before any of its body is received (FastAPI reads
    a whole form before the route runs); the route still checks what actually arrives."""

    def mark(endpoint: Endpoint) -> Endpoint:
        _BODY_LIMITS[endpoint] = BodyLimit(limit, message)
        return endpoint

    return mark


_WHERE = frozenset({"body", "query", "path", "form", "header", "cookie"})


def invalid_request(error: RequestValidationError) -> BatchError:
    """What was missing or malformed in a request, naming its fields and never their values
    (FastAPI's errors carry the submitted input: a password must not reach a page or a log)."""
    problems = []
    for item in error.errors():
        field = ".".join(str(p) for p in item.get("loc", ()) if p not in _WHERE) or "request"
        problem = "missing" if item.get("type") == "missing" else item.get("msg", "not valid")
        problems.append(f"{field}: {problem}")
    return BatchError("this request was not accepted; " + "; ".join(problems))


class PageRoute(APIRoute):
    """A route of the web UI: login redirects and readable errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The FastAPI handler, wrapped."""
        handler = super().get_route_handler()
        limit = _BODY_LIMITS.get(self.endpoint)

        async def guarded(request: Request) -> Response:
            try:
                if limit is not None:
                    limit.refuse_declared(request)
                return await handler(request)
            except LoginRequired:
                return go_to(request, "/login")
            except RequestValidationError as error:  # logged nowhere: it holds what was sent
                invalid = invalid_request(error)
                return notice(request, invalid.message, status=error_status(request, invalid))
            except HTTPException as error:  # e.g. a body that is not a form
                return notice(request, str(error.detail), status=error.status_code)
            except CohortsyncError as error:
                if status_for(error) >= 500:
                    log.exception("web request failed", exc_info=error)
                return notice(request, error.message, status=error_status(request, error))
            except Exception:
                log.exception("web request failed")
                return notice(request, "Something went wrong; see the server log.", status=500)

        return guarded
