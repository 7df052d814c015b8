"""Request dependencies of the API: the user of the bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cohortsync.app_state import StateDep
from cohortsync.domain.accounts import User
from cohortsync.domain.errors import AuthenticationError

_bearer = HTTPBearer(auto_error=False)


def current_user(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user of the bearer token, or 401."""
    if credentials is None:
        raise AuthenticationError("send 'Authorization: Bearer <token>' (POST /api/v1/login)")
    user = state.accounts.user_for_token(credentials.credentials)
    if user is None:
        raise AuthenticationError(
            "the bearer token is not valid (unknown, expired or revoked, or its user is "
            "disabled); sign in again (POST /api/v1/login) or ask an operator for a new one"
        )
    return user


CurrentUser = Annotated[User, Depends(current_user)]
