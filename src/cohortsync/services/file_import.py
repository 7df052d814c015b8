"""Importing NDJSON or CSV files of events or profile updates, resumably and exactly once.

Each batch is stored in the same transaction as the file's checkpoint (byte offset), so a
re-run after a crash continues after the last stored batch and stores nothing twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy.engine import Connection

from cohortsync.domain.accounts import Project
from cohortsync.domain.events import MAX_RECORDS_PER_REQUEST
from cohortsync.ingest.results import FailedRecord, IngestResult
from cohortsync.services.ingestion import IngestionService
from cohortsync.storage.database import read_transaction
from cohortsync.storage.import_checkpoint_store import ImportCheckpoint, ImportCheckpointStore

_MAX_INT_DIGITS = 18  # longer integers are read as floats: JSON as stored carries 64 bits
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")


class ImportKind(StrEnum):
    """What a file holds."""

    EVENTS = "events"
    PROFILES = "profiles"


@dataclass
class ImportReport:
    """What an import did: records stored, records rejected (with their line), where it resumed."""

    stored: int = 0
    rejected: list[tuple[int, FailedRecord]] = field(default_factory=list)
    resumed_at: int = 0
    already_done: bool = False


def fingerprint(path: Path) -> str:
    """Identifies a file's content cheaply: size plus its first and last 64 KiB."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(65536))
        if size > 65536:
            handle.seek(max(size - 65536, 65536))
            digest.update(handle.read())
    return digest.hexdigest()


def _scalar(text: str) -> Any:
    """CSV cells: numbers and true/false become typed values, the rest stay strings."""
    if _NUMBER.fullmatch(text):
        if any(c in text for c in ".eE") or len(text) > _MAX_INT_DIGITS:
            number = float(text)
            return number if math.isfinite(number) else text  # 1e400 stays as written
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    return text


def _csv_record(kind: ImportKind, row: dict[str, str]) -> dict[str, Any]:
    cells = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
    if kind is ImportKind.EVENTS:
        properties = {k: (_scalar(v) if k != "$insert_id" else v) for k, v in cells.items()}
        if "distinct_id" in cells:
            properties["distinct_id"] = cells["distinct_id"]  # ids stay strings
        return {"event": properties.pop("event", None), "properties": properties}
    distinct_id = cells.pop("$distinct_id", cells.pop("distinct_id", None))
    return {"$distinct_id": distinct_id, "$set": {k: _scalar(v) for k, v in cells.items()}}


def _lines(handle: IO[bytes], positions: list[int]) -> Iterator[str]:
    while True:
        line = handle.readline()
        if not line:
            return
        positions[0] = handle.tell()
        yield line.decode("utf-8-sig" if positions[0] == len(line) else "utf-8")


def _records(
    handle: IO[bytes], csv_format: bool, kind: ImportKind, start: int
) -> Iterator[tuple[int, int, Any]]:
    """(line number, byte offset after the record, record or a parse error string)."""
    positions = [start]
    if csv_format:
        handle.seek(0)
        header_reader = csv.reader(io.StringIO(handle.readline().decode("utf-8-sig")))
        header = next(header_reader, [])
        if start == 0:
            positions[0] = handle.tell()
        else:
            handle.seek(start)
        reader = csv.DictReader(_lines(handle, positions), fieldnames=header)
        for number, row in enumerate(reader, start=1):
            yield number, positions[0], _csv_record(kind, row)
        return
    handle.seek(start)
    for number, line in enumerate(_lines(handle, positions), start=1):
        if not line.strip():
            continue
        try:
            record: Any = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            record = f"not valid JSON: {exc}"
        yield number, positions[0], record


def import_file(
    service: IngestionService,
    project: Project,
    path: Path,
    kind: ImportKind,
    *,
    batch_size: int = MAX_RECORDS_PER_REQUEST,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import ``path`` into ``project``; calls ``progress(bytes_done, stored)`` after each batch."""
    engine = service.engine
    key = fingerprint(path)
    report = ImportReport()
    with read_transaction(engine) as connection:
        row = ImportCheckpointStore(connection).get(project.id, key)
    start = 0
    if row is not None:
        start, report.resumed_at = row.position, row.position
        if row.finished:
            report.already_done = True
            return report
    csv_format = path.suffix.lower() == ".csv"
    line_offset = 0  # line numbers restart on resume; report them relative to the resume point

    records_before = row.records if row is not None else 0
    read = [0]

    def checkpoint(position: int, finished: bool) -> Callable[[Connection], None]:
        def save(connection: Connection) -> None:
            ImportCheckpointStore(connection).save(
                ImportCheckpoint(
                    project.id,
                    key,
                    kind.value,
                    str(path)[:1000],
                    position,
                    records_before + read[0],
                    finished,
                )
            )

        return save

    ingest = service.import_events if kind is ImportKind.EVENTS else service.import_profiles
    with path.open("rb") as handle:
        batch: list[Any] = []
        lines: list[int] = []
        position = start

        def flush(finished: bool) -> None:
            parsed = [r for r in batch if not isinstance(r, str)]
            numbers = [n for n, r in zip(lines, batch, strict=True) if not isinstance(r, str)]
            for number, record in zip(lines, batch, strict=True):
                if isinstance(record, str):
                    report.rejected.append(
                        (line_offset + number, FailedRecord(-1, None, "line", record))
                    )
            read[0] += len(batch)
            result: IngestResult = ingest(project, parsed, checkpoint(position, finished))
            report.stored += result.imported
            for failed in result.failed:
                report.rejected.append((line_offset + numbers[failed.index], failed))
            if progress is not None:
                progress(position, report.stored)
            batch.clear()
            lines.clear()

        for number, end, record in _records(handle, csv_format, kind, start):
            batch.append(record)
            lines.append(number)
            position = end
            if len(batch) >= batch_size:
                flush(False)
        flush(True)
    return report
