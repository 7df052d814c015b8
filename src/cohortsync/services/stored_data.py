"""Data as stored, for people checking that their data arrived: events and profiles read back."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy.engine import Engine

from cohortsync.storage.database import ping, read_transaction
from cohortsync.warehouse.events import export_events
from cohortsync.warehouse.profiles import StoredProfile, get_profile, profiled_ids


class StoredData:
    """Reads of the stored events and profiles, each in its own transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def export_events(
        self, project_id: int, start_ms: int, end_ms: int, event: str | None
    ) -> Iterator[bytes]:
        """NDJSON lines of the project's events in ``[start_ms, end_ms)``, read in one
        transaction that stays open while the lines are consumed."""
        with read_transaction(self._engine) as connection:
            yield from export_events(connection, project_id, start_ms, end_ms, event)

    def profile(self, project_id: int, any_id: str) -> StoredProfile | None:
        """The user known by ``any_id``, or None when neither events nor a profile name them
        (an id holding a NUL names nobody: no stored id can hold one)."""
        if "\x00" in any_id:
            return None
        with read_transaction(self._engine) as connection:
            return get_profile(connection, project_id, any_id)

    def profiled_ids(self, project_id: int, limit: int | None = None) -> list[str]:
        """distinct_ids of the project's profiles (the first ``limit``, when given)."""
        with read_transaction(self._engine) as connection:
            return profiled_ids(connection, project_id, limit)

    def ping(self) -> None:
        """Ask the database to answer (readiness)."""
        ping(self._engine)
