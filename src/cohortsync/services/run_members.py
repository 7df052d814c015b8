"""Members a run skipped or the partner rejected (R-SYN-7), as the run's report lists them: pages
in distinct_id order behind a keyset cursor, and the whole list as CSV, streamed.

The sync engine writes the rows (``sync_run_members``) while it plans and sends; this service
only reads them (through ``RunMemberStore``).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from cohortsync.domain.errors import BatchError, NotFound
from cohortsync.storage.database import read_transaction
from cohortsync.storage.run_member_store import RunMemberStore
from cohortsync.sync.outcomes import REJECTED, SKIPPED

OUTCOMES = (SKIPPED, REJECTED)
MAX_PAGE = 1000
CSV_COLUMNS = ("distinct_id", "partner_key", "outcome", "reason")
CSV_CHUNK = 1000
# A spreadsheet runs a cell starting with one of these as a formula: ids and reasons come from
# outside (any SDK, the partner), so such a cell is written with a leading apostrophe.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class RunMember:
    """One member a run skipped (no partner key) or the partner rejected, with the reason."""

    distinct_id: str
    partner_key: str | None
    outcome: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        """The API shape."""
        return {
            "distinct_id": self.distinct_id,
            "partner_key": self.partner_key,
            "outcome": self.outcome,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RunMemberPage:
    """A page of a run's skipped and rejected members, and the cursor of the next page."""

    members: list[RunMember]
    next_cursor: str | None

    def as_json(self) -> dict[str, Any]:
        """The API shape."""
        return {"members": [m.as_json() for m in self.members], "next_cursor": self.next_cursor}


def _encode_cursor(member: RunMember) -> str:
    raw = orjson.dumps([member.distinct_id, member.outcome])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        distinct_id, outcome = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise BatchError("'cursor' is not one this API gave (use next_cursor as it is)") from None
    if not isinstance(distinct_id, str) or not isinstance(outcome, str):
        raise BatchError("'cursor' is not one this API gave (use next_cursor as it is)")
    return distinct_id, outcome


def _check_outcome(outcome: str | None) -> None:
    if outcome is not None and outcome not in OUTCOMES:
        raise BatchError(f"'outcome' must be one of: {', '.join(OUTCOMES)}")


def _member(row: Any) -> RunMember:
    return RunMember(row.distinct_id, row.member_key, row.outcome, row.reason)


def _cell(value: str | None) -> str:
    text = value or ""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@dataclass(frozen=True)
class CsvDownload:
    """A CSV streamed as it is read, and the name it is saved under."""

    lines: Iterator[bytes]
    filename: str


class RunMemberReport:
    """The run report's list of skipped and rejected members, over one database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _check_run(self, store: RunMemberStore, project_id: int, sync_id: int, run_id: int) -> None:
        if not store.run_exists(project_id, sync_id, run_id):
            raise NotFound(f"run {run_id} of sync {sync_id} does not exist in project {project_id}")

    def page(
        self,
        project_id: int,
        sync_id: int,
        run_id: int,
        *,
        outcome: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> RunMemberPage:
        """A page of the run's members after ``cursor`` in (distinct_id, outcome) order, of one
        outcome or both (a member taken off for lack of a key may be skipped and have its
        removal rejected); NotFound unless the run is the sync's."""
        _check_outcome(outcome)
        if not 1 <= limit <= MAX_PAGE:
            raise BatchError(f"'limit' must be between 1 and {MAX_PAGE}")
        with read_transaction(self._engine) as connection:
            store = RunMemberStore(connection)
            self._check_run(store, project_id, sync_id, run_id)
            after = _decode_cursor(cursor) if cursor else None
            rows = store.page(run_id, outcome, after, limit + 1)
        members = [_member(row) for row in rows[:limit]]
        return RunMemberPage(members, _encode_cursor(members[-1]) if len(rows) > limit else None)

    def csv(self, project_id: int, sync_id: int, run_id: int) -> CsvDownload:
        """The run's skipped and rejected members as CSV (distinct_id, partner_key, outcome,
        reason), streamed; a run that is not the sync's is NotFound at once, before any byte."""
        with read_transaction(self._engine) as connection:
            self._check_run(RunMemberStore(connection), project_id, sync_id, run_id)
        return CsvDownload(self._csv_rows(run_id), csv_filename(sync_id, run_id))

    def _csv_rows(self, run_id: int) -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        with read_transaction(self._engine) as connection:
            rows = RunMemberStore(connection).stream(run_id, CSV_CHUNK)
            for count, row in enumerate(rows, 1):
                writer.writerow(
                    [_cell(row.distinct_id), _cell(row.member_key), row.outcome, _cell(row.reason)]
                )
                if count % CSV_CHUNK == 0:
                    yield buffer.getvalue().encode()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue().encode()


def csv_filename(sync_id: int, run_id: int) -> str:
    """The name a download of the CSV is saved under."""
    return f"sync-{sync_id}-run-{run_id}-skipped-rejected.csv"
