"""The audit log as stored: who did what to which target, and when (secrets never kept)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.clock import as_utc
from cohortsync.domain.audit import AuditEntry, AuditQuery
from cohortsync.redaction import MASK, redact
from cohortsync.storage.tables import audit_log, users

# Detail keys whose values are secrets whatever they hold (credentials, passwords, tokens).
_SECRET_KEY = re.compile(r"pass(word|code)?|secret|token|api_?key|credential|authorization", re.I)


def redacted_detail(value: Any) -> Any:
    """``value`` with every secret-named field masked and registered secrets masked in text."""
    if isinstance(value, dict):
        return {
            str(k): MASK if _SECRET_KEY.search(str(k)) else redacted_detail(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redacted_detail(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


class AuditStore:
    """Entries of the audit log, written in the caller's transaction (so an action and its
    record commit together) and read a page at a time, newest first."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def record(
        self,
        *,
        project_id: int | None,
        user_id: int | None,
        action: str,
        target: str,
        detail: dict[str, Any],
        at: datetime,
        actor: str | None = None,
    ) -> None:
        """Record one action: ``project_id`` None for actions outside a project; ``actor``
        defaults to the email of ``user_id``; secrets in ``detail`` are masked."""
        if actor is None and user_id is not None:
            actor = self._connection.execute(
                sa.select(users.c.email).where(users.c.id == user_id)
            ).scalar_one_or_none()
        self._connection.execute(
            audit_log.insert().values(
                project_id=project_id,
                user_id=user_id,
                actor=actor,
                action=action,
                target=target[:255],
                detail=redacted_detail(detail),
                at=at,
            )
        )

    def entries(self, query: AuditQuery) -> list[AuditEntry]:
        """The entries ``query`` asks for, newest (highest id) first."""
        scope = audit_log.c.project_id == query.project_id
        if query.include_global:
            scope = sa.or_(scope, audit_log.c.project_id.is_(None))
        conditions = [scope]
        if query.before is not None:
            conditions.append(audit_log.c.id < query.before)
        if query.action:
            conditions.append(audit_log.c.action.startswith(query.action, autoescape=True))
        if query.start is not None:
            conditions.append(audit_log.c.at >= query.start)
        if query.end is not None:
            conditions.append(audit_log.c.at < query.end)
        rows = self._connection.execute(
            sa.select(
                audit_log.c.id,
                audit_log.c.project_id,
                audit_log.c.at,
                audit_log.c.actor,
                audit_log.c.action,
                audit_log.c.target,
                audit_log.c.detail,
            )
            .where(*conditions)
            .order_by(audit_log.c.id.desc())
            .limit(query.limit)
        )
        return [
            AuditEntry(
                id=int(row.id),
                project_id=row.project_id,
                at=as_utc(row.at),
                actor=row.actor,
                action=row.action,
                target=row.target,
                detail=dict(row.detail or {}),
            )
            for row in rows
        ]
