"""What an ingestion request reports back: how many records were stored and which failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cohortsync.domain.errors import RecordError


@dataclass(frozen=True, slots=True)
class FailedRecord:
    """One record that failed validation, by its position in the request."""

    index: int
    insert_id: str | None
    field: str
    message: str

    def as_json(self) -> dict[str, Any]:
        """The ``failed_records`` entry Mixpanel's /import documents."""
        return {
            "index": self.index,
            "insert_id": self.insert_id,
            "field": self.field,
            "message": self.message,
        }


def failure(index: int, record: Any, error: RecordError) -> FailedRecord:
    """A FailedRecord for ``record`` (its $insert_id echoed when it has one)."""
    insert_id = None
    if isinstance(record, dict):
        props = record.get("properties")
        if isinstance(props, dict) and isinstance(props.get("$insert_id"), str):
            insert_id = props["$insert_id"]
    return FailedRecord(index, insert_id, error.field, error.message)


@dataclass(slots=True)
class IngestResult:
    """Stored count and failures of one request."""

    imported: int = 0
    failed: list[FailedRecord] = field(default_factory=list)

    def merge(self, other: IngestResult) -> None:
        """Add another partial result (records of another project in the same request)."""
        self.imported += other.imported
        self.failed.extend(other.failed)
        self.failed.sort(key=lambda f: f.index)

    def summary(self) -> str:
        """A sentence naming the failed records, for the SDK-style ``error`` field."""
        shown = "; ".join(f"record {f.index}: {f.message}" for f in self.failed[:10])
        more = f" (and {len(self.failed) - 10} more)" if len(self.failed) > 10 else ""
        total = self.imported + len(self.failed)
        return f"{len(self.failed)} of {total} records failed: {shown}{more}"
