"""The MTU report (R-MTU-1, R-MTU-2) and the exemption list it reads, which operators edit."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, Engine

from cohortsync.clock import Clock, SystemClock
from cohortsync.domain.audit import actor_for
from cohortsync.domain.errors import BatchError, NotFound
from cohortsync.domain.outreach import ANY_SOURCE, Exemption
from cohortsync.storage.audit_store import AuditStore
from cohortsync.storage.database import read_transaction, write_transaction
from cohortsync.warehouse.mtu import (
    MonthActivity,
    add_exemptions,
    delete_exemption,
    load_exemptions,
    month_activity,
)

_MONTH = re.compile(r"(\d{4})-(\d{2})")
FIRST_YEAR, LAST_YEAR = 1970, 2999  # the months a report can be asked for
MTU_RECOUNT_AFTER = timedelta(minutes=15)  # how stale a past month's figure in a chart may be


@dataclass(frozen=True)
class Month:
    """A calendar month in UTC."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """``YYYY-MM`` from 1970-01 to 2999-12, or a BatchError that says so."""
        found = _MONTH.fullmatch(text.strip())
        if found is None or not 1 <= int(found.group(2)) <= 12:
            raise BatchError(f"month must be YYYY-MM (for example 2026-11), not {text[:40]!r}")
        if not FIRST_YEAR <= int(found.group(1)) <= LAST_YEAR:
            raise BatchError(
                f"month must be between {FIRST_YEAR}-01 and {LAST_YEAR}-12, not {text[:40]!r}"
            )
        return cls(int(found.group(1)), int(found.group(2)))

    @classmethod
    def of(cls, moment: datetime) -> Month:
        """The month ``moment`` falls in (UTC)."""
        moment = moment.astimezone(UTC)
        return cls(moment.year, moment.month)

    def next(self) -> Month:
        """The month after."""
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Month:
        """The month before."""
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def start_ms(self) -> int:
        """Its first millisecond since the epoch."""
        return int(datetime(self.year, self.month, 1, tzinfo=UTC).timestamp() * 1000)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


class MtuHistory:
    """MTU month by month, for charts. A past month is counted again only when its figure is
    older than ``recount_after``: it changes only when late events are imported or identities
    merge, and counting a month of millions of events takes seconds. An edit of the exemption
    list counts every month again. The current month and later ones are counted every time."""

    def __init__(self, engine: Engine, clock: Clock, recount_after: timedelta) -> None:
        self._engine = engine
        self._clock = clock
        self._recount_after = recount_after
        self._counted: dict[tuple[int, Month, tuple[Exemption, ...]], tuple[datetime, int]] = {}
        self._lock = threading.Lock()

    def by_month(self, project_id: int, months: Sequence[Month]) -> list[tuple[Month, int]]:
        """``(month, MTU)`` for each month, in the order given."""
        now = self._clock.now()
        current = Month.of(now).start_ms()
        figures = []
        with read_transaction(self._engine) as connection:
            listed = tuple(load_exemptions(connection))
            for month in months:
                key = (project_id, month, listed)
                with self._lock:
                    counted = self._counted.get(key)
                past = month.start_ms() < current
                if past and counted is not None and now - counted[0] < self._recount_after:
                    figures.append((month, counted[1]))
                    continue
                end = month.next().start_ms()
                value = month_activity(connection, project_id, month.start_ms(), end, listed).mtu
                if past:
                    with self._lock:
                        self._counted[key] = (now, value)
                figures.append((month, value))
        return figures


@dataclass(frozen=True)
class MtuReport:
    """One month's MTU and what was left out of it."""

    month: Month
    activity: MonthActivity

    def as_json(self) -> dict[str, Any]:
        """The API shape (SPEC §11: month, mtu, events, exempt, …)."""
        activity = self.activity
        exempt_events = sum(n for names in activity.exempt.values() for n in names.values())
        return {
            "month": str(self.month),
            "mtu": activity.mtu,
            "events": activity.events,
            "exempt_events": exempt_events,
            "qualifying_events": activity.events - exempt_events,
            "exempt": {
                source: dict(sorted(names.items()))
                for source, names in sorted(activity.exempt.items())
            },
            "not_counted_users": activity.not_counted,
            "reached_only_by_exempt": dict(sorted(activity.not_counted_by_source.items())),
        }


def _checked(source: str, event: str) -> Exemption:
    source, event = source.strip(), event.strip()
    if not source or len(source) > 40:
        raise BatchError(f"source must be 1-40 characters ({ANY_SOURCE!r} for every source)")
    if not event or len(event) > 255:
        raise BatchError("event must be 1-255 characters")
    return Exemption(source, event)


class MtuReports:
    """Monthly tracked users (R-MTU-1, R-MTU-2) and the exemption list operators edit, over one
    database; edits of the list are audited (outside any project: the list is global)."""

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock = clock or SystemClock()

    def report(self, project_id: int, month: Month) -> MtuReport:
        """Compute the month's report from the stored events and the current exemption list."""
        with read_transaction(self._engine) as connection:
            exemptions = load_exemptions(connection)
            activity = month_activity(
                connection, project_id, month.start_ms(), month.next().start_ms(), exemptions
            )
        return MtuReport(month, activity)

    def exemptions(self) -> list[Exemption]:
        """The exemption list."""
        with read_transaction(self._engine) as connection:
            return load_exemptions(connection)

    def add_exemption(self, source: str, event: str, *, user_id: int | None = None) -> Exemption:
        """Exempt ``event`` when it carries ``source`` as $source (adding it twice is
        harmless)."""
        exemption = _checked(source, event)
        with write_transaction(self._engine) as connection:
            add_exemptions(connection, [exemption])
            self._audit(connection, "mtu.exemption.add", exemption, user_id)
        return exemption

    def remove_exemption(self, source: str, event: str, *, user_id: int | None = None) -> Exemption:
        """Make ``event`` from ``source`` count toward MTU again."""
        exemption = _checked(source, event)
        with write_transaction(self._engine) as connection:
            gone = delete_exemption(connection, exemption)
            if gone:
                self._audit(connection, "mtu.exemption.remove", exemption, user_id)
        if not gone:
            raise NotFound(f"{exemption.event!r} from {exemption.source!r} is not exempt")
        return exemption

    def _audit(
        self, connection: Connection, action: str, exemption: Exemption, user_id: int | None
    ) -> None:
        AuditStore(connection).record(
            project_id=None,
            user_id=user_id,
            action=action,
            target=f"exemption:{exemption.source}/{exemption.event}",
            detail=exemption._asdict(),
            at=self._clock.now(),
            actor=actor_for(user_id),
        )
