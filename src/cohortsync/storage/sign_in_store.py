"""Failed sign-ins counted per key (``email:<folded>``, ``address:<ip>``) in the database, so
every process of the service sees the same counts and locks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.clock import as_utc
from cohortsync.storage.tables import sign_in_failures
from cohortsync.warehouse.sql import insert_ignoring_duplicates


class SignInStore:
    """Failure counts and locks, read and written in the caller's transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def locked_until(self, keys: Sequence[str], now: datetime) -> datetime | None:
        """The latest end of a lock on any of ``keys`` still in force at ``now``."""
        found = self._connection.execute(
            sa.select(sign_in_failures.c.locked_until).where(
                sign_in_failures.c.key.in_(list(keys)),
                sign_in_failures.c.locked_until.is_not(None),
            )
        ).scalars()
        ends = [as_utc(end) for end in found if as_utc(end) > now]
        return max(ends, default=None)

    def count_failure(
        self, key: str, now: datetime, window: timedelta, limit: int
    ) -> datetime | None:
        """Count one failure for ``key`` (a count older than ``window`` starts again); at
        ``limit`` failures the key is locked for ``window``: the end of that lock, else None."""
        insert_ignoring_duplicates(
            self._connection,
            sign_in_failures,
            [{"key": key, "failures": 0, "first_failed_at": now, "locked_until": None}],
        )
        row = self._connection.execute(
            sa.select(sign_in_failures.c.failures, sign_in_failures.c.first_failed_at)
            .where(sign_in_failures.c.key == key)
            .with_for_update()
        ).one()
        failures, first = int(row.failures) + 1, as_utc(row.first_failed_at)
        if first <= now - window:
            failures, first = 1, now
        locked = now + window if failures >= limit else None
        self._connection.execute(
            sign_in_failures.update()
            .where(sign_in_failures.c.key == key)
            .values(failures=failures, first_failed_at=first, locked_until=locked)
        )
        return locked

    def clear(self, key: str) -> None:
        """Forget the failures of ``key`` (a successful sign-in of that account)."""
        self._connection.execute(sign_in_failures.delete().where(sign_in_failures.c.key == key))

    def forget_before(self, before: datetime, now: datetime) -> None:
        """Drop counts that started before ``before`` and are not locked at ``now``."""
        self._connection.execute(
            sign_in_failures.delete().where(
                sign_in_failures.c.first_failed_at < before,
                sa.or_(
                    sign_in_failures.c.locked_until.is_(None),
                    sign_in_failures.c.locked_until <= now,
                ),
            )
        )
