"""Signing in and out, and the front door (``/``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from starlette.concurrency import run_in_threadpool

from cohortsync.app_state import StateDep
from cohortsync.client_address import client_address
from cohortsync.domain.accounts import TooManySignIns
from cohortsync.domain.errors import AuthenticationError
from cohortsync.web.pages import PageRoute, go_to, render
from cohortsync.web.session import (
    PostedSessionDep,
    WebSession,
    check_origin,
    session_user,
    sign_in,
    sign_out,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _home(session: WebSession) -> str:
    projects = sorted(session.user.roles)
    return f"/projects/{projects[0]}/cohorts" if projects else "/login?no_project=1"


@router.get("/")
def front_door(request: Request, state: StateDep) -> Response:
    """The first project's cohorts when signed in, else the login page."""
    session = session_user(request, state)
    return go_to(request, _home(session) if session and session.user.roles else "/login")


@router.get("/login")
def login_page(request: Request, no_project: int = 0) -> Response:
    """The sign-in form."""
    message = "Your account is not a member of any project yet." if no_project else None
    return render(request, "login.html", {"email": "", "message": message})


@router.post("/login")
async def login(
    request: Request,
    state: StateDep,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1000)],
) -> Response:
    """Check the password with the accounts service (the same as ``POST /api/v1/login``,
    throttled the same way: 429 with Retry-After and a message saying when to try again);
    a form posted from another site is refused."""
    check_origin(request, state.settings)
    address = client_address(request, state.settings.trust_proxy)
    try:
        token = await run_in_threadpool(state.accounts.login, email, password, address)
    except AuthenticationError as error:
        return render(request, "login.html", {"email": email, "message": error.message})
    except TooManySignIns as refused:
        message = refused.message[0].upper() + refused.message[1:] + "."
        return render(
            request,
            "login.html",
            {"email": email, "message": message},
            status=429,
            headers={"Retry-After": str(refused.retry_after_seconds)},
        )
    response = go_to(request, "/")
    sign_in(request, response, token, state.settings)
    return response


@router.post("/logout")
def logout(request: Request, state: StateDep, session: PostedSessionDep) -> Response:
    """Revoke the session's token and drop the cookie."""
    state.accounts.revoke_token(session.token)
    response = go_to(request, "/login")
    sign_out(response)
    return response
