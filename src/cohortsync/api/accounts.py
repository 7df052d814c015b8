"""Sign-in and projects: ``POST /api/v1/login``, ``GET /api/v1/projects``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cohortsync.api.deps import CurrentUser
from cohortsync.app_state import StateDep
from cohortsync.client_address import client_address

router = APIRouter(prefix="/api/v1", tags=["accounts"])


class LoginRequest(BaseModel):
    """Email and password of a person."""

    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1000)


class LoginResponse(BaseModel):
    """A bearer token for the API."""

    token: str


class ProjectOut(BaseModel):
    """A project as its members see it (the ingestion token is not a secret)."""

    id: int
    name: str
    token: str
    identity_mode: str
    role: str


@router.post(
    "/login",
    response_model=LoginResponse,
    responses={
        429: {
            "description": "Too many failed sign-ins for the email or from the address, or the "
            "server is busy hashing passwords: try again after Retry-After seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        }
    },
)
async def login(
    body: LoginRequest, request: Request, state: StateDep
) -> LoginResponse | JSONResponse:
    """Exchange email and password for a bearer token (it expires after
    ``COHORTSYNC_SESSION_HOURS``). After too many failures for the email or from the address
    (``COHORTSYNC_SIGN_IN_*``) the answer is 429 with ``Retry-After``, whatever the password."""
    address = client_address(request, state.settings.trust_proxy)
    token = await run_in_threadpool(state.accounts.login, body.email, body.password, address)
    return LoginResponse(token=token)


@router.get("/projects", response_model=list[ProjectOut])
def list_projects(user: CurrentUser, state: StateDep) -> list[ProjectOut]:
    """The projects the signed-in user belongs to."""
    found = state.projects.list(list(user.roles))
    return [
        ProjectOut(
            id=p.id,
            name=p.name,
            token=p.token,
            identity_mode=p.identity_mode.value,
            role=user.roles[p.id].value,
        )
        for p in found
    ]
