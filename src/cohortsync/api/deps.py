"""Request dependencies: the shared state, the signed-in user, project access."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cohortsync.api.state import AppState
from cohortsync.domain.accounts import Role, User
from cohortsync.domain.errors import AuthenticationError, NotFound, PermissionDenied
from cohortsync.services import accounts
from cohortsync.storage.database import read_transaction

_bearer = HTTPBearer(auto_error=False)


def get_state(request: Request) -> AppState:
    """The process-wide state."""
    state: AppState = request.app.state.cohortsync
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def current_user(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user of the bearer token, or 401."""
    if credentials is None:
        raise AuthenticationError("send 'Authorization: Bearer <token>' (POST /api/v1/login)")
    with read_transaction(state.engine) as connection:
        user = accounts.user_for_token(
            connection,
            credentials.credentials,
            now=state.clock.now(),
            login_lifetime=state.settings.session_lifetime,
        )
    if user is None:
        raise AuthenticationError("the bearer token is not valid")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def project_role(user: User, project_id: int) -> Role:
    """The user's role in the project; a project they are not in is reported as missing."""
    role = user.role_in(project_id)
    if role is None:
        raise NotFound(f"project {project_id} does not exist or you are not a member")
    return role


def require_admin(user: User, project_id: int) -> None:
    """Refuse anyone but the project's admins."""
    if project_role(user, project_id) is not Role.ADMIN:
        raise PermissionDenied("only project admins may do this")
