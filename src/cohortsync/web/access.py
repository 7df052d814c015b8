"""Who may see and do what on a project's pages: the same rules as the API (`project_role`,
`require_admin`), applied to the signed-in browser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from cohortsync.app_state import StateDep
from cohortsync.domain.accounts import Project, Role, project_role, require_admin
from cohortsync.row_ids import RowId
from cohortsync.web.session import PostedSessionDep, SessionDep, WebSession


@dataclass(frozen=True)
class ProjectView:
    """The signed-in person looking at one of their projects."""

    session: WebSession
    project: Project
    role: Role
    projects: list[Project]

    @property
    def is_admin(self) -> bool:
        """Whether admin-only actions are offered."""
        return self.role is Role.ADMIN


def _view(state: StateDep, session: WebSession, project_id: RowId) -> ProjectView:
    role = project_role(session.user, project_id)  # NotFound for someone else's project
    projects = state.projects.list(sorted(session.user.roles))
    current = next(p for p in projects if p.id == project_id)
    return ProjectView(session, current, role, projects)


def project_view(project_id: RowId, state: StateDep, session: SessionDep) -> ProjectView:
    """A page of a project the person belongs to (404 for any other)."""
    return _view(state, session, project_id)


def member_action(project_id: RowId, state: StateDep, session: PostedSessionDep) -> ProjectView:
    """A CSRF-checked POST any member of the project may make (cohorts)."""
    return _view(state, session, project_id)


def admin_action(project_id: RowId, state: StateDep, session: PostedSessionDep) -> ProjectView:
    """A CSRF-checked POST only the project's admins may make; 403 for members."""
    require_admin(session.user, project_id)
    return _view(state, session, project_id)


def admin_view(project_id: RowId, state: StateDep, session: SessionDep) -> ProjectView:
    """A dialog that leads only to an admin action (Connect, Export); 403 for members."""
    require_admin(session.user, project_id)
    return _view(state, session, project_id)


ViewDep = Annotated[ProjectView, Depends(project_view)]
MemberActionDep = Annotated[ProjectView, Depends(member_action)]
AdminActionDep = Annotated[ProjectView, Depends(admin_action)]
AdminViewDep = Annotated[ProjectView, Depends(admin_view)]
