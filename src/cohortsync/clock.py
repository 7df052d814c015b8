"""Time as an injected dependency: windows, schedules and backoff are testable without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current UTC time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC)


class FrozenClock:
    """A clock that moves only when told to (tests and simulations)."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        """The frozen time."""
        return self._now

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward."""
        self._now += delta


def now_ms(clock: Clock) -> int:
    """The clock's time in milliseconds since the epoch."""
    return int(clock.now().timestamp() * 1000)


def as_utc(moment: datetime) -> datetime:
    """A stored time made timezone-aware (SQLite hands back naive datetimes, stored in UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
