"""Entries of the audit log (R-OBS-1) and what a reader asks of it: one page, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cohortsync.clock import as_utc

CLI_ACTOR = "cli"  # the actor of actions taken on the server's command line
MAX_PAGE = 500
MAX_ID = 2**31 - 1  # ids are the databases' 32-bit integers (PostgreSQL INTEGER)


@dataclass(frozen=True)
class AuditEntry:
    """One recorded action: who (``actor``, an email or ``cli``), what, on which target, when;
    ``project_id`` None for actions outside a project (people, tokens, sign-ins, keys)."""

    id: int
    project_id: int | None
    at: datetime
    actor: str | None
    action: str
    target: str
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """The API shape (SPEC §11): ``details`` is the stored ``detail``."""
        return {
            "id": self.id,
            "at": as_utc(self.at).isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": self.detail,
            "project_id": self.project_id,
        }


@dataclass(frozen=True)
class AuditQuery:
    """Which entries to read: those of a project (and, with ``include_global``, those outside
    any project), older than entry ``before``, whose action starts with ``action``, recorded in
    ``[start, end)``; at most ``limit``, newest first."""

    project_id: int
    limit: int = 50
    before: int | None = None
    action: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    include_global: bool = False


def actor_for(user_id: int | None) -> str | None:
    """The actor to record beside ``user_id``: None when a person acted (their email is looked
    up), else the command line (services called without a user are called by the CLI)."""
    return None if user_id is not None else CLI_ACTOR
