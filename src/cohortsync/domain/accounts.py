"""Projects, people and their roles."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from cohortsync.domain.errors import NotFound, PermissionDenied
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
