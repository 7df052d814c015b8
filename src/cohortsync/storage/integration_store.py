"""Integrations as stored: their rows, sealed credentials and sealed webhook secrets.

The store never opens a sealed document: the keyring is the service's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.clock import as_utc
from cohortsync.domain.errors import NotFound
from cohortsync.domain.identity import IdentityMode
from cohortsync.domain.integrations import INTEGRATION_MOVES, Integration, IntegrationStatus
from cohortsync.domain.status_moves import allowed_from
from cohortsync.storage.database import move_status
from cohortsync.storage.tables import integrations, projects, webhook_secrets


def _integration(row: Any) -> Integration:
    return Integration(
        id=row.id,
        project_id=row.project_id,
        type=row.type,
        name=row.name,
        settings=dict(row.settings),
        status=IntegrationStatus(row.status),
        error=row.error,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


class IntegrationStore:
    """The integrations of the database, read and written in the caller's transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def insert(self, values: dict[str, Any]) -> int:
        """A new integration row; its id."""
        new_id = self._connection.execute(
            integrations.insert().values(**values).returning(integrations.c.id)
        ).scalar_one()
        return int(new_id)

    def get(self, project_id: int, integration_id: int) -> Integration:
        """One integration of the project, or NotFound."""
        row = self._connection.execute(
            sa.select(integrations).where(
                integrations.c.id == integration_id,
                integrations.c.project_id == project_id,
            )
        ).first()
        if row is None:
            raise NotFound(f"integration {integration_id} does not exist in project {project_id}")
        return _integration(row)

    def find(self, integration_id: int) -> Integration | None:
        """An integration of any project, by id (a webhook call names only the id)."""
        row = self._connection.execute(
            sa.select(integrations).where(integrations.c.id == integration_id)
        ).first()
        return _integration(row) if row is not None else None

    def for_project(self, project_id: int) -> list[Integration]:
        """The project's integrations, oldest first."""
        rows = self._connection.execute(
            sa.select(integrations)
            .where(integrations.c.project_id == project_id)
            .order_by(integrations.c.id)
        )
        return [_integration(r) for r in rows]

    def update(self, integration_id: int, values: dict[str, Any]) -> None:
        """Change an integration's stored columns other than its status."""
        if "status" in values:
            raise ValueError("an integration's status changes through move()")
        self._connection.execute(
            integrations.update().where(integrations.c.id == integration_id).values(**values)
        )

    def move(
        self,
        integration_id: int,
        new: IntegrationStatus,
        values: dict[str, Any],
        *,
        only_from: tuple[IntegrationStatus, ...] | None = None,
    ) -> bool:
        """Move an integration to ``new`` (with ``values``) where its status allows it
        (narrowed to ``only_from``); whether it moved."""
        sources = allowed_from(INTEGRATION_MOVES, new, only_from)
        return move_status(self._connection, integrations, integration_id, new, sources, values)

    def sealed_credentials(self, project_id: int, integration_id: int) -> str:
        """The integration's credentials, still sealed."""
        sealed = self._connection.execute(
            sa.select(integrations.c.credentials).where(
                integrations.c.id == integration_id,
                integrations.c.project_id == project_id,
            )
        ).scalar_one()
        return str(sealed)

    def all_sealed_credentials(self) -> list[tuple[int, str]]:
        """(id, sealed credentials) of every integration."""
        rows = self._connection.execute(sa.select(integrations.c.id, integrations.c.credentials))
        return [(int(r.id), str(r.credentials)) for r in rows]

    def simplified_id_merge(self, project_id: int) -> bool:
        """Whether the project merges identities the simplified way (partners match $user_id)."""
        mode = self._connection.execute(
            sa.select(projects.c.identity_mode).where(projects.c.id == project_id)
        ).scalar_one_or_none()
        return mode == IdentityMode.SIMPLIFIED.value

    # -- webhook secrets ------------------------------------------------------------------

    def webhook_secrets(self, integration_id: int) -> tuple[str, datetime | None] | None:
        """(sealed secrets, end of the previous secret's overlap), or None when it has none."""
        row = self._connection.execute(
            sa.select(webhook_secrets.c.sealed, webhook_secrets.c.previous_until).where(
                webhook_secrets.c.integration_id == integration_id
            )
        ).first()
        if row is None:
            return None
        until = as_utc(row.previous_until) if row.previous_until is not None else None
        return str(row.sealed), until

    def save_webhook_secrets(
        self, integration_id: int, sealed: str, previous_until: datetime | None, now: datetime
    ) -> None:
        """Store the integration's sealed secrets (made or rotated at ``now``)."""
        values = {"sealed": sealed, "previous_until": previous_until, "rotated_at": now}
        updated = self._connection.execute(
            webhook_secrets.update()
            .where(webhook_secrets.c.integration_id == integration_id)
            .values(**values)
        )
        if updated.rowcount == 0:
            self._connection.execute(
                webhook_secrets.insert().values(integration_id=integration_id, **values)
            )

    def forget_webhook_secrets(self, integration_id: int) -> None:
        """Drop the integration's secrets."""
        self._connection.execute(
            webhook_secrets.delete().where(webhook_secrets.c.integration_id == integration_id)
        )

    def all_sealed_webhook_secrets(self) -> list[tuple[int, str]]:
        """(integration id, sealed secrets) of every integration that has them."""
        rows = self._connection.execute(
            sa.select(webhook_secrets.c.integration_id, webhook_secrets.c.sealed)
        )
        return [(int(r.integration_id), str(r.sealed)) for r in rows]

    def reseal_webhook_secrets(self, integration_id: int, sealed: str) -> None:
        """Replace the sealed secrets (re-encrypted with a newer key)."""
        self._connection.execute(
            webhook_secrets.update()
            .where(webhook_secrets.c.integration_id == integration_id)
            .values(sealed=sealed)
        )
