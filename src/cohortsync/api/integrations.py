"""Integrations API (SPEC §11): connect, list, get, edit, disconnect; writes are admin-only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cohortsync.api.deps import CurrentUser
from cohortsync.app_state import StateDep
from cohortsync.domain.accounts import Role, project_role, require_admin
from cohortsync.domain.integrations import Integration
from cohortsync.row_ids import RowId
from cohortsync.services import integrations

router = APIRouter(prefix="/api/v1/projects/{project_id}/integrations", tags=["integrations"])


class IntegrationIn(BaseModel):
    """A partner account to connect."""

    type: str = Field(description="iterable, clevertap, xtremepush or webhook")
    name: str | None = Field(default=None, max_length=255)
    credentials: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)


class IntegrationChange(BaseModel):
    """Fields to change; absent ones stay. The partner is checked again. A new ``url``,
    ``base_url`` or ``region`` needs the credentials in the same request."""

    name: str | None = Field(default=None, max_length=255)
    credentials: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None


def _json(integration: Integration, admin: bool) -> dict[str, Any]:
    """The API shape as this person may see it (members: no partner error text)."""
    return integrations.shown(integration, admin).as_json()


@router.post("", status_code=201)
def connect(
    project_id: RowId, body: IntegrationIn, user: CurrentUser, state: StateDep
) -> dict[str, Any]:
    """Connect a partner account: the credentials are checked with a harmless call first."""
    require_admin(user, project_id)
    integration = state.integrations.connect(
        project_id, body.type, body.credentials, body.settings, body.name, user.id
    )
    return _json(integration, admin=True)


@router.get("")
def list_integrations(
    project_id: RowId, user: CurrentUser, state: StateDep
) -> list[dict[str, Any]]:
    """The project's integrations (never their credentials; for members, no partner error)."""
    admin = project_role(user, project_id) is Role.ADMIN
    return [_json(i, admin) for i in state.integrations.list(project_id)]


@router.get("/{integration_id}")
def get_integration(
    project_id: RowId, integration_id: RowId, user: CurrentUser, state: StateDep
) -> dict[str, Any]:
    """One integration."""
    admin = project_role(user, project_id) is Role.ADMIN
    return _json(state.integrations.get(project_id, integration_id), admin)


@router.put("/{integration_id}")
def update_integration(
    project_id: RowId,
    integration_id: RowId,
    body: IntegrationChange,
    user: CurrentUser,
    state: StateDep,
) -> dict[str, Any]:
    """Change an integration's credentials, settings or name (checked again)."""
    require_admin(user, project_id)
    integration = state.integrations.update(
        project_id,
        integration_id,
        credentials=body.credentials,
        settings=body.settings,
        name=body.name,
        user_id=user.id,
    )
    return _json(integration, admin=True)


@router.delete("/{integration_id}")
def disconnect(
    project_id: RowId, integration_id: RowId, user: CurrentUser, state: StateDep
) -> dict[str, Any]:
    """Disconnect: the credentials are forgotten and the integration's syncs stop."""
    require_admin(user, project_id)
    disconnected = integrations.disconnect(
        state.integrations, state.partner_events, project_id, integration_id, user.id
    )
    return _json(disconnected, admin=True)
