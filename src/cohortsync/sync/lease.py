"""Never two runs of one sync at once: a lease on the sync row, taken by a conditional UPDATE.

The UPDATE succeeds for one worker only, on SQLite and PostgreSQL alike, across threads,
processes and machines. The holder renews the lease while it works (a heartbeat thread and every
checkpoint); a worker that dies stops renewing, and the lease expires so another can resume.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection, Engine

from cohortsync.clock import Clock
from cohortsync.domain.errors import CohortsyncError
from cohortsync.storage.database import write_transaction
from cohortsync.storage.sync_store import SyncStore

log = logging.getLogger(__name__)


class LeaseLost(CohortsyncError):
    """Another worker took over this sync (our lease expired): stop without writing more."""

    code = "lease_lost"


def take(engine: Engine, sync_id: int, owner: str, now: datetime, seconds: float) -> bool:
    """Take the sync's lease if nobody holds an unexpired one; True when taken."""
    with write_transaction(engine) as connection:
        until = now + timedelta(seconds=seconds)
        return SyncStore(connection).take_lease(sync_id, owner, now, until)


def renew(connection: Connection, sync_id: int, owner: str, now: datetime, seconds: float) -> None:
    """Extend our lease inside the caller's transaction, or raise LeaseLost."""
    until = now + timedelta(seconds=seconds)
    if not SyncStore(connection).renew_lease(sync_id, owner, until):
        raise LeaseLost(f"sync {sync_id} was taken over by another worker")


def release(engine: Engine, sync_id: int, owner: str) -> None:
    """Give the lease back (only if we still hold it)."""
    with write_transaction(engine) as connection:
        SyncStore(connection).release_lease(sync_id, owner)


class Heartbeat:
    """Renews a lease in the background while a run waits on the partner (backoff, slow calls)."""

    def __init__(
        self, engine: Engine, clock: Clock, sync_id: int, owner: str, seconds: float
    ) -> None:
        self._engine, self._clock = engine, clock
        self._sync_id, self._owner, self._seconds = sync_id, owner, seconds
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._beat, name=f"lease-{sync_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self._seconds / 3):
            try:
                with write_transaction(self._engine) as connection:
                    renew(connection, self._sync_id, self._owner, self._clock.now(), self._seconds)
            except LeaseLost:
                self.lost = True
                return
            except Exception:  # a database hiccup: the next beat tries again
                log.warning("could not renew the lease of sync %s", self._sync_id, exc_info=True)
