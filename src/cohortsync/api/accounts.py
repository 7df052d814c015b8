"""Sign-in and projects: ``POST /api/v1/login``, ``GET /api/v1/projects``."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cohortsync.api.deps import CurrentUser
from cohortsync.app_state import StateDep

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


@router.post("/login", response_model=LoginResponse)
async def login(body: LoginRequest, state: StateDep) -> LoginResponse:
    """Exchange email and password for a bearer token (it expires after
    ``COHORTSYNC_SESSION_HOURS``)."""
    token = await run_in_threadpool(state.accounts.login, body.email, body.password)
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
