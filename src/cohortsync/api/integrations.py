"""Integrations API (SPEC §11): connect, list, get, edit, disconnect; writes are admin-only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cohortsync.api.deps import CurrentUser
from cohortsync.app_state import StateDep
from cohortsync.domain.accounts import project_role, require_admin
from cohortsync.services import integrations

router = APIRouter(prefix="/api/v1/projects/{project_id}/integrations", tags=["integrations"])


class IntegrationIn(BaseModel):
    """A partner account to connect."""

    type: str = Field(description="iterable, clevertap, xtremepush or webhook")
    name: str | None = Field(default=None, max_length=255)
    credentials: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)


class IntegrationChange(BaseModel):
    """Fields to change; absent ones stay. The partner is checked again."""

    name: str | None = Field(default=None, max_length=255)
    credentials: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None


@router.post("", status_code=201)
def connect(
    project_id: int, body: IntegrationIn, user: CurrentUser, state: StateDep
) -> dict[str, Any]:
    """Connect a partner account: the credentials are checked with a harmless call first."""
    require_admin(user, project_id)
    integration = state.integrations.connect(
        project_id, body.type, body.credentials, body.settings, body.name, user.id
    )
    return integration.as_json()


@router.get("")
def list_integrations(project_id: int, user: CurrentUser, state: StateDep) -> list[dict[str, Any]]:
    """The project's integrations (never their credentials)."""
    project_role(user, project_id)
    return [i.as_json() for i in state.integrations.list(project_id)]


@router.get("/{integration_id}")
def get_integration(
    project_id: int, integration_id: int, user: CurrentUser, state: StateDep
) -> dict[str, Any]:
    """One integration."""
    project_role(user, project_id)
    return state.integrations.get(project_id, integration_id).as_json()


@router.put("/{integration_id}")
def update_integration(
    project_id: int,
    integration_id: int,
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
    )
    return integration.as_json()


@router.delete("/{integration_id}")
def disconnect(
    project_id: int, integration_id: int, user: CurrentUser, state: StateDep
) -> dict[str, Any]:
    """Disconnect: the credentials are forgotten and the integration's syncs stop."""
    require_admin(user, project_id)
    disconnected = integrations.disconnect(
        state.integrations, state.partner_events, project_id, integration_id
    )
    return disconnected.as_json()
