"""Projects, people and their roles."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from cohortsync.domain.errors import NotFound, PermissionDenied, TooManyRequests
from cohortsync.domain.identity import IdentityMode


class Role(StrEnum):
    """What a person may do in a project: admins write integrations and syncs, members read."""

    ADMIN = "admin"
    MEMBER = "member"


@dataclass(frozen=True, slots=True)
class Project:
    """A project: one stream of events and profiles, with its ingestion token."""

    id: int
    name: str
    token: str
    identity_mode: IdentityMode


@dataclass(frozen=True, slots=True)
class User:
    """A person who signs in, with a role per project."""

    id: int
    email: str
    roles: dict[int, Role] = field(default_factory=dict)

    def role_in(self, project_id: int) -> Role | None:
        """The user's role in the project, or None if not a member."""
        return self.roles.get(project_id)


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


class TooManySignIns(TooManyRequests):
    """Sign-in refused for now: too many failures for the account or the address, or the
    server is busy hashing; ``retry_after_seconds`` (whole) until it is worth trying again.
    Answered with 429 and ``Retry-After``."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, math.ceil(retry_after))


@dataclass(frozen=True, slots=True)
class SignInLimits:
    """How many failed sign-ins an account and an address may have within ``window`` before
    sign-in is refused for them (for ``window`` from the last one counted)."""

    per_account: int = 5
    per_address: int = 20
    window: timedelta = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Person:
    """A person as an operator lists them: roles, and when they were disabled (if they are)."""

    id: int
    email: str
    created_at: datetime
    disabled_at: datetime | None
    roles: dict[int, Role] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TokenListing:
    """A bearer token as an operator lists it: never the token itself."""

    id: int
    name: str
    email: str
    created_at: datetime
    expires_at: datetime | None
