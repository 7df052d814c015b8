"""A signed-in browser: the session cookie (a sign-in token of the accounts service, which
expires after ``COHORTSYNC_SESSION_HOURS``), the CSRF token derived from it, and signing in and
out."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response

from cohortsync.app_state import StateDep
from cohortsync.domain.accounts import User
from cohortsync.domain.errors import PermissionDenied
from cohortsync.settings import Settings

COOKIE = "cohortsync_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_CSRF_LABEL = b"cohortsync web form"


class LoginRequired(Exception):
    """No valid session: the browser is sent to the login page."""


def csrf_for(token: str) -> str:
    """The CSRF token of a session: unguessable without the (HttpOnly) session token itself."""
    return hmac.new(token.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class WebSession:
    """The signed-in person and their session token."""

    user: User
    token: str

    @property
    def csrf(self) -> str:
        """What every POST of this session must carry."""
        return csrf_for(self.token)


def session_user(request: Request, state: StateDep) -> WebSession | None:
    """The session of the request's cookie, or None when there is none or it was revoked."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    user = state.accounts.user_for_token(token)
    return WebSession(user, token) if user is not None else None


def current_session(session: Annotated[WebSession | None, Depends(session_user)]) -> WebSession:
    """The signed-in session, or LoginRequired."""
    if session is None:
        raise LoginRequired
    return session


SessionDep = Annotated[WebSession, Depends(current_session)]


async def posted_session(request: Request, session: SessionDep) -> WebSession:
    """The session of a POST whose CSRF token (header or form field) is the session's own."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        field = (await request.form()).get(CSRF_FIELD)
        sent = field if isinstance(field, str) else None
    if sent is None or not hmac.compare_digest(sent, session.csrf):
        raise PermissionDenied("this form is out of date or from another site; reload the page")
    return session


PostedSessionDep = Annotated[WebSession, Depends(posted_session)]


def _forwarded(request: Request, header: str) -> str | None:
    value = request.headers.get(header, "").split(",")[0].strip()
    return value or None


def public_origin(request: Request, settings: Settings) -> str:
    """``scheme://host`` as the browser sees this server: the request's own, or behind a
    trusted proxy (``COHORTSYNC_TRUST_PROXY``) what its X-Forwarded-Proto/-Host say."""
    scheme, host = request.url.scheme, request.headers.get("host") or request.url.netloc
    if settings.trust_proxy:
        scheme = _forwarded(request, "x-forwarded-proto") or scheme
        host = _forwarded(request, "x-forwarded-host") or host
    return f"{scheme}://{host}".lower()


def check_origin(request: Request, settings: Settings) -> None:
    """Refuse a form posted from another site: its ``Origin``, when the browser sends one, must
    be this server's (the login form has no session yet, hence no CSRF token)."""
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/").lower() != public_origin(request, settings):
        raise PermissionDenied("sign in from this server's own page")


def sign_in(request: Request, response: Response, token: str, settings: Settings) -> None:
    """Keep the sign-in token in an HttpOnly, SameSite=Strict cookie that lasts as long as the
    token does, Secure when the browser reached the server over HTTPS."""
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(settings.session_lifetime.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=public_origin(request, settings).startswith("https:"),
        path="/",
    )


def sign_out(response: Response) -> None:
    """Drop the session cookie."""
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
