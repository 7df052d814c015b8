"""The audit log as stored: who did what to which target, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from cohortsync.storage.tables import audit_log


class AuditStore:
    """Entries of the audit log, written in the caller's transaction (so an action and its
    record commit together)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def record(
        self,
        *,
        project_id: int,
        user_id: int | None,
        action: str,
        target: str,
        detail: dict[str, Any],
        at: datetime,
    ) -> None:
        """Record one action."""
        self._connection.execute(
            audit_log.insert().values(
                project_id=project_id,
                user_id=user_id,
                action=action,
                target=target,
                detail=detail,
                at=at,
            )
        )
