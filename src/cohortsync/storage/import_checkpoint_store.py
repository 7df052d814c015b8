"""Where each imported file got to: the byte offset and record count stored with every batch, so
an interrupted import resumes after the last stored batch."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.storage.tables import import_checkpoints
from cohortsync.warehouse.sql import upsert


@dataclass(frozen=True, slots=True)
class ImportCheckpoint:
    """How far the import of one file (by fingerprint) into a project got."""

    project_id: int
    fingerprint: str
    kind: str
    source: str
    position: int
    records: int
    finished: bool


class ImportCheckpointStore:
    """The checkpoints of file imports, read and written in the caller's transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def get(self, project_id: int, fingerprint: str) -> ImportCheckpoint | None:
        """The checkpoint of the file with ``fingerprint`` in the project, if it was begun."""
        row = self._connection.execute(
            sa.select(import_checkpoints).where(
                import_checkpoints.c.project_id == project_id,
                import_checkpoints.c.fingerprint == fingerprint,
            )
        ).first()
        if row is None:
            return None
        return ImportCheckpoint(
            row.project_id,
            row.fingerprint,
            row.kind,
            row.source,
            int(row.position),
            int(row.records),
            bool(row.finished),
        )

    def save(self, checkpoint: ImportCheckpoint) -> None:
        """Store the checkpoint, replacing the file's earlier one."""
        upsert(
            self._connection,
            import_checkpoints,
            [
                {
                    "project_id": checkpoint.project_id,
                    "fingerprint": checkpoint.fingerprint,
                    "kind": checkpoint.kind,
                    "source": checkpoint.source,
                    "position": checkpoint.position,
                    "records": checkpoint.records,
                    "finished": checkpoint.finished,
                }
            ],
            ("project_id", "fingerprint"),
            ("position", "records", "finished"),
        )
