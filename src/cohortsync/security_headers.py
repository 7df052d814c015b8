"""Security headers on every HTTP response: pages, API, ingestion and static files.

The pages load only their own scripts and styles (``/static``): no inline script, no ``eval``
(htmx runs with ``allowEval: false``) and no inline style, so the Content-Security-Policy
allows ``'self'`` alone. The
interactive API docs (``/docs``, ``/redoc``) are FastAPI's pages, which load Swagger UI or
ReDoc from their CDN with an inline bootstrap script: they get a policy of their own allowing
just that. No page may be framed (clickjacking). HSTS is sent only on a request that came over
HTTPS: the server's own TLS, or a trusted proxy's ``X-Forwarded-Proto: https``
(``COHORTSYNC_TRUST_PROXY``). CORS of the ingestion endpoints is left to
:class:`cohortsync.api.ingestion.BrowserCors`; nothing here restricts who may call them.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ALWAYS = (
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)

PAGE_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        *_ALWAYS,
    )
)

_CDN = "https://cdn.jsdelivr.net"
DOCS_POLICY = "; ".join(
    (
        "default-src 'self'",
        f"script-src 'self' 'unsafe-inline' {_CDN}",
        f"style-src 'self' 'unsafe-inline' {_CDN} https://fonts.googleapis.com",
        "font-src 'self' https://fonts.gstatic.com",
        "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        *_ALWAYS,
    )
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})

COMMON: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # not no-referrer: with it Chromium sends "Origin: null" on the pages' own form posts, and
    # sign-in refuses a form whose origin is not the server's
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
HSTS = "max-age=31536000"
_SCOPE_KEY = "cohortsync.security_headers"  # the headers SecurityHeaders chose for a request


def came_over_https(scope: Scope, trust_proxy: bool) -> bool:
    """Whether the browser reached the service over HTTPS: this server's own TLS, or (only
    when the proxy in front is trusted) the first X-Forwarded-Proto saying so."""
    if scope.get("scheme") == "https":
        return True
    if not trust_proxy:
        return False
    forwarded = Headers(scope=scope).get("x-forwarded-proto", "")
    return forwarded.split(",")[0].strip().lower() == "https"


def headers_for(scope: Scope, trust_proxy: bool) -> dict[str, str]:
    """The security headers of the response to the request of ``scope``."""
    policy = DOCS_POLICY if scope.get("path") in DOCS_PATHS else PAGE_POLICY
    headers = {**COMMON, "Content-Security-Policy": policy}
    if came_over_https(scope, trust_proxy):
        headers["Strict-Transport-Security"] = HSTS
    return headers


class SecurityHeaders:
    """ASGI middleware adding the security headers to every HTTP response (a header a route
    set itself is kept)."""

    def __init__(self, app: ASGIApp, trust_proxy: bool = False) -> None:
        self.app = app
        self.trust_proxy = trust_proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to its response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        added = headers_for(scope, self.trust_proxy)
        scope[_SCOPE_KEY] = added  # for a 500 sent from outside, see guarded()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in added.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, sending)


def guarded(response: Response, scope: Scope) -> Response:
    """``response`` with the security headers of the request of ``scope``: for a response sent
    from outside :class:`SecurityHeaders` (a 500 answered by Starlette's error handler, which
    wraps every middleware), with the headers that middleware chose for the request."""
    chosen: Mapping[str, str] = scope.get(_SCOPE_KEY) or headers_for(scope, trust_proxy=False)
    for name, value in chosen.items():
        if name not in response.headers:
            response.headers[name] = value
    return response


def install_security_headers(app: FastAPI, trust_proxy: bool) -> None:
    """Add the headers to every response of ``app`` (its outermost middleware but Starlette's
    own error handler)."""
    app.add_middleware(SecurityHeaders, trust_proxy=trust_proxy)
