"""The audit log (R-OBS-1): reading a project's entries a page at a time, and recording an
action that has no write transaction of its own (a key rotation)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from cohortsync.clock import Clock
from cohortsync.domain.audit import MAX_ID, MAX_PAGE, AuditEntry, AuditQuery
from cohortsync.domain.errors import BatchError
from cohortsync.storage.audit_store import AuditStore, redacted_detail
from cohortsync.storage.database import read_transaction, write_transaction

FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2999, 12, 31)  # the days a filter may name


def day_start(text: str, name: str) -> datetime:
    """The first moment (UTC) of the day ``text`` names as YYYY-MM-DD (1970-01-01 to
    2999-12-31); a BatchError naming the parameter otherwise."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise BatchError(f"{name!r} must be a date as YYYY-MM-DD, got {text[:40]!r}") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BatchError(f"{name!r} must be a date between {FIRST_DAY} and {LAST_DAY}")
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def audit_query(
    project_id: int,
    *,
    limit: int = 50,
    before: int | None = None,
    action: str | None = None,
    from_day: str | None = None,
    to_day: str | None = None,
    include_global: bool = False,
) -> AuditQuery:
    """A checked query: ``limit`` 1-500, ``from_day``/``to_day`` inclusive UTC days, ``action``
    a prefix of action names (``sync.`` for every sync action)."""
    if not 1 <= limit <= MAX_PAGE:
        raise BatchError(f"limit must be 1-{MAX_PAGE}")
    if before is not None and not 1 <= before <= MAX_ID:
        raise BatchError(f"before must be the id of an entry (1-{MAX_ID})")
    if action is not None and len(action) > 100:
        raise BatchError("action must be at most 100 characters (a prefix such as 'sync.')")
    if action is not None and "\x00" in action:
        raise BatchError("action must not hold a NUL character (a prefix such as 'sync.')")
    start = day_start(from_day, "from") if from_day else None
    end = day_start(to_day, "to") + timedelta(days=1) if to_day else None
    if start is not None and end is not None and end <= start:
        raise BatchError("'to' must not be before 'from'")
    return AuditQuery(
        project_id=project_id,
        limit=limit,
        before=before,
        action=action or None,
        start=start,
        end=end,
        include_global=include_global,
    )


@dataclass(frozen=True)
class AuditPage:
    """Entries newest first, and the ``before`` that reads the next (older) page (None: this
    is the last page)."""

    entries: list[AuditEntry]
    next_before: int | None


class AuditLog:
    """The audit log of one database."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def page(self, query: AuditQuery) -> AuditPage:
        """One page of entries, newest first; details masked again as they are read (a secret
        registered after the entry was written is masked too)."""
        with read_transaction(self._engine) as connection:
            found = AuditStore(connection).entries(replace(query, limit=query.limit + 1))
        more = len(found) > query.limit
        entries = [replace(e, detail=redacted_detail(e.detail)) for e in found[: query.limit]]
        return AuditPage(entries, entries[-1].id if more else None)

    def record(
        self,
        *,
        action: str,
        target: str,
        detail: dict[str, Any],
        actor: str | None = None,
        project_id: int | None = None,
        user_id: int | None = None,
    ) -> None:
        """Record an action now, in a transaction of its own (for actions that have none)."""
        with write_transaction(self._engine) as connection:
            AuditStore(connection).record(
                project_id=project_id,
                user_id=user_id,
                action=action,
                target=target,
                detail=detail,
                at=self._clock.now(),
                actor=actor,
            )
