"""Data as stored, for people checking that their data arrived: events export and profiles."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from cohortsync.api.deps import CurrentUser
from cohortsync.app_state import StateDep
from cohortsync.domain.accounts import project_role
from cohortsync.domain.errors import BatchError, NotFound
from cohortsync.row_ids import RowId

router = APIRouter(prefix="/api/v1/projects/{project_id}", tags=["data"])


def _day_ms(value: str, name: str) -> int:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise BatchError(f"'{name}' must be a date as YYYY-MM-DD, got {value!r}") from None
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


@router.get("/events", response_class=StreamingResponse)
def events_export(
    project_id: RowId,
    user: CurrentUser,
    state: StateDep,
    from_date: Annotated[str, Query(alias="from", description="first day, YYYY-MM-DD (UTC)")],
    to_date: Annotated[str, Query(alias="to", description="last day, YYYY-MM-DD (UTC)")],
    event: Annotated[str | None, Query(description="only events with this name")] = None,
) -> StreamingResponse:
    """Stored events between two days inclusive, as NDJSON, with canonical distinct_ids."""
    project_role(user, project_id)
    start = _day_ms(from_date, "from")
    end = _day_ms(to_date, "to") + int(timedelta(days=1).total_seconds() * 1000)
    if end <= start:
        raise BatchError("'to' must not be before 'from'")

    lines = state.data.export_events(project_id, start, end, event)
    return StreamingResponse(lines, media_type="application/x-ndjson")


@router.get("/profiles/{distinct_id}")
def profile(
    project_id: RowId, distinct_id: str, user: CurrentUser, state: StateDep
) -> dict[str, Any]:
    """One user by any of their ids: canonical id, every id, properties, identified or not."""
    project_role(user, project_id)
    found = state.data.profile(project_id, distinct_id)
    if found is None:
        raise NotFound(f"no user with distinct_id {distinct_id!r} in project {project_id}")
    return {
        "distinct_id": found.distinct_id,
        "ids": found.ids,
        "properties": found.properties,
        "identified": found.identified,
    }
