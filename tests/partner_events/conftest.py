"""Partner events tests: a live server with users whose partner keys are known, and an
integration of each partner connected to its emulator (for its webhook secret)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from cohortsync.domain.accounts import Project
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.sandbox.outreach import PartnerCaller
from cohortsync.services.ingestion import IngestionService
from tests.conftest import LiveServer
from tests.helpers import admin_token

# distinct_id → profile properties: how each partner's keys lead back to the user
USERS: dict[str, dict[str, Any]] = {
    "ada": {"$email": "ada@example.com"},
    "grace": {"$email": "grace@example.com", "$iterable_user_id": "it-grace"},
    "lin": {"$email": "lin@example.com", "$CleverTap_user_id": "ct-lin"},
    "mo": {"$email": "mo@example.com"},
}


@dataclass
class Partners:
    """The live server, an admin's client, and one connected integration per partner."""

    server: LiveServer
    project: Project
    api: httpx.Client
    token: str
    integrations: dict[str, dict[str, Any]]

    def caller(self, partner: str, secret: str | None = None) -> PartnerCaller:
        """Posts to the partner's webhook with its secret (or the one given)."""
        integration = self.integrations[partner]
        hook = integration["webhook"]
        return PartnerCaller(
            url=self.server.url + hook["path"],
            partner=partner,
            secret=secret if secret is not None else hook["secret"],
            client=self.api,
        )

    def events(self, **params: str) -> list[dict[str, Any]]:
        """Stored events, as the export API gives them."""
        from tests.helpers import exported

        return exported(self.api, self.token, self.project.id, **params)


def seed_users(server: LiveServer, project: Project) -> None:
    """The profiles of USERS (the $CleverTap_user_id one makes its alias)."""
    service = IngestionService(server.engine, server.clock)
    result = service.engage(
        [
            {"$token": project.token, "$distinct_id": user, "$set": properties}
            for user, properties in USERS.items()
        ]
    )
    assert not result.failed


@pytest.fixture
def partners(
    live_server: LiveServer, project: Project, sandboxes: dict[str, RunningSandbox]
) -> Partners:
    token = admin_token(live_server.engine, project.id)
    api = live_server.client(headers={"Authorization": f"Bearer {token}"})
    seed_users(live_server, project)
    connected = {}
    for partner in ("iterable", "clevertap", "xtremepush"):
        reply = api.post(
            f"/api/v1/projects/{project.id}/integrations", json=sandboxes[partner].integration()
        )
        assert reply.status_code == 201, reply.text
        connected[partner] = reply.json()
    return Partners(live_server, project, api, token, connected)
