"""A connected partner account as everyone may see it (R-INT-1 … R-INT-6): never its
credentials, which are sealed in the database and opened only to build a connector."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class IntegrationStatus(StrEnum):
    """Whether the partner last accepted the credentials."""

    CONNECTED = "connected"
    ERROR = "error"  # the partner refused (a revoked key): its syncs wait until it is fixed
    DISCONNECTED = "disconnected"  # credentials forgotten, syncs stopped; connect a new one


# A disconnected integration has forgotten its credentials: it is never used again (connect a
# new one). A check against the partner moves the others to connected or error.
INTEGRATION_MOVES: dict[IntegrationStatus, frozenset[IntegrationStatus]] = {
    IntegrationStatus.CONNECTED: frozenset(IntegrationStatus),
    IntegrationStatus.ERROR: frozenset(IntegrationStatus),
    IntegrationStatus.DISCONNECTED: frozenset({IntegrationStatus.DISCONNECTED}),
}


@dataclass(frozen=True)
class Integration:
    """A partner account: its type, name, settings and status."""

    id: int
    project_id: int
    type: str
    name: str
    settings: dict[str, Any]
    status: IntegrationStatus
    error: str | None
    created_at: datetime
    updated_at: datetime
    sends_events: bool = False  # the partner sends its messaging events back (webhooks)
    # Set only in the answer that made it (connect, rotate): the one time it is shown.
    webhook_secret: str | None = None
    previous_secret_until: datetime | None = None

    def webhook_json(self) -> dict[str, Any] | None:
        """Where the partner sends its events, for integrations whose partner sends them."""
        if not self.sends_events or self.status == IntegrationStatus.DISCONNECTED:
            return None
        body: dict[str, Any] = {"path": f"/webhooks/{self.id}"}
        if self.webhook_secret is not None:
            body["secret"] = self.webhook_secret
            body["secret_shown_once"] = True
        if self.previous_secret_until is not None:
            body["previous_secret_valid_until"] = self.previous_secret_until.isoformat()
        return body

    def as_json(self) -> dict[str, Any]:
        """The API shape (SPEC §11)."""
        body: dict[str, Any] = {
            "id": self.id,
            "project_id": self.project_id,
            "type": self.type,
            "name": self.name,
            "status": self.status,
            "settings": self.settings,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
        if self.error:
            body["error"] = self.error
        webhook = self.webhook_json()
        if webhook is not None:
            body["webhook"] = webhook
        return body
