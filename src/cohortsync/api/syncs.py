"""Syncs API (SPEC §11): preview, export, list, run now, confirm, stop, run history, the members
a run skipped or had rejected, and explain.

Members may look; only admins may start, run, confirm or stop.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from cohortsync.api.deps import CurrentUser
from cohortsync.app_state import StateDep
from cohortsync.domain.accounts import Role, project_role, require_admin
from cohortsync.downloads import csv_response
from cohortsync.row_ids import RowId
from cohortsync.services import run_members
from cohortsync.services.run_errors import shown_run

router = APIRouter(prefix="/api/v1/projects/{project_id}/syncs", tags=["syncs"])


class PreviewIn(BaseModel):
    """Which export to preview."""

    cohort_id: RowId
    integration_id: RowId


class ExportIn(BaseModel):
    """An export of a cohort to an integration."""

    cohort_id: RowId
    integration_id: RowId
    mode: str = Field(description="one_time or dynamic")
    interval_seconds: int | None = Field(
        default=None, description="dynamic only: overrides the partner's default interval"
    )


@router.post("/preview")
def preview(
    project_id: RowId, body: PreviewIn, user: CurrentUser, state: StateDep
) -> dict[str, Any]:
    """How many members a run would add, update, remove and skip (by reason); sends nothing."""
    project_role(user, project_id)
    return state.syncs.preview(project_id, body.cohort_id, body.integration_id).as_json()


@router.post("", status_code=201)
def export(project_id: RowId, body: ExportIn, user: CurrentUser, state: StateDep) -> dict[str, Any]:
    """Start a one-time or dynamic export; re-exporting a cohort replaces the previous one."""
    require_admin(user, project_id)
    sync = state.syncs.export(
        project_id,
        body.cohort_id,
        body.integration_id,
        body.mode,
        interval_seconds=body.interval_seconds,
        user_id=user.id,
    )
    return sync.as_json()


@router.get("")
def list_syncs(project_id: RowId, user: CurrentUser, state: StateDep) -> list[dict[str, Any]]:
    """The project's syncs."""
    project_role(user, project_id)
    return [s.as_json() for s in state.syncs.all(project_id)]


@router.get("/{sync_id}")
def get_sync(
    project_id: RowId, sync_id: RowId, user: CurrentUser, state: StateDep
) -> dict[str, Any]:
    """One sync, with its latest run (for members, without the partner's error text)."""
    admin = project_role(user, project_id) is Role.ADMIN
    body = state.syncs.get(project_id, sync_id).as_json()
    runs = state.syncs.runs(project_id, sync_id, limit=1)
    body["last_run"] = shown_run(runs[0], admin).as_json() if runs else None
    return body


@router.post("/{sync_id}/run", status_code=202)
def run_now(
    project_id: RowId,
    sync_id: RowId,
    user: CurrentUser,
    state: StateDep,
    reconcile: bool = False,
) -> dict[str, Any]:
    """Run now (in the background); 409 while a run is in progress. ``?reconcile=true`` reads
    the partner's list back first and repairs drift, where the partner can be read."""
    require_admin(user, project_id)
    run = state.syncs.run_now(project_id, sync_id, reconcile=reconcile, user_id=user.id)
    return run.as_json()


@router.post("/{sync_id}/confirm", status_code=202)
def confirm(
    project_id: RowId, sync_id: RowId, user: CurrentUser, state: StateDep
) -> dict[str, Any]:
    """Let a blocked run go ahead (recorded in the audit log)."""
    require_admin(user, project_id)
    return state.syncs.confirm(project_id, sync_id, user.id).as_json()


@router.delete("/{sync_id}")
def stop(project_id: RowId, sync_id: RowId, user: CurrentUser, state: StateDep) -> dict[str, Any]:
    """Stop the sync; a run in progress ends after its current batch."""
    require_admin(user, project_id)
    return state.syncs.stop(project_id, sync_id, user.id).as_json()


@router.get("/{sync_id}/runs")
def runs(
    project_id: RowId,
    sync_id: RowId,
    user: CurrentUser,
    state: StateDep,
    limit: int = Query(default=50, ge=1, le=500),
) -> list[dict[str, Any]]:
    """The run history, newest first (for members, without the partner's error text)."""
    admin = project_role(user, project_id) is Role.ADMIN
    return [shown_run(r, admin).as_json() for r in state.syncs.runs(project_id, sync_id, limit)]


@router.get("/{sync_id}/rejections")
def rejections(
    project_id: RowId, sync_id: RowId, user: CurrentUser, state: StateDep
) -> list[dict[str, Any]]:
    """Members the partner refused; they are tried again on the next run."""
    project_role(user, project_id)
    return state.syncs.rejections(project_id, sync_id)


@router.get("/{sync_id}/runs/{run_id}/members")
def run_members_page(
    project_id: RowId,
    sync_id: RowId,
    run_id: RowId,
    user: CurrentUser,
    state: StateDep,
    outcome: str | None = Query(default=None, description="skipped or rejected (default: both)"),
    limit: int = Query(default=100, ge=1, le=run_members.MAX_PAGE),
    cursor: str | None = Query(default=None, description="next_cursor of the previous page"),
) -> dict[str, Any]:
    """Members the run skipped (with the reason) or the partner rejected (with the key)."""
    project_role(user, project_id)
    page = state.run_members.page(
        project_id, sync_id, run_id, outcome=outcome, limit=limit, cursor=cursor
    )
    return page.as_json()


@router.get("/{sync_id}/runs/{run_id}/members.csv", response_class=StreamingResponse)
def run_members_csv(
    project_id: RowId, sync_id: RowId, run_id: RowId, user: CurrentUser, state: StateDep
) -> StreamingResponse:
    """The run's skipped and rejected members as CSV: distinct_id, partner_key, outcome, reason."""
    project_role(user, project_id)
    return csv_response(state.run_members.csv(project_id, sync_id, run_id))


@router.get("/{sync_id}/explain")
def explain(
    project_id: RowId,
    sync_id: RowId,
    user: CurrentUser,
    state: StateDep,
    distinct_id: str = Query(min_length=1, description="any id of the user"),
) -> dict[str, Any]:
    """Why the user is or is not on the partner's list (R-X-4): the cohort condition by
    condition, identified or not, partner key or skip reason, acknowledged, last rejection and
    what the partner held when its list was last read back. The partner is not called."""
    project_role(user, project_id)
    return state.explainer.explain(project_id, sync_id, distinct_id).as_json()
