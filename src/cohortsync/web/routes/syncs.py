"""The Syncs page: each export's status, last and next run, run history (with the members each
run skipped or had rejected, as CSV), "why is … (not) on the list?", and (for admins) Run now,
Stop, and Confirm of a blocked run."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from cohortsync.app_state import AppState, StateDep
from cohortsync.destinations.registry import partner
from cohortsync.domain.integrations import Integration
from cohortsync.domain.sync_status import RunStatus
from cohortsync.domain.syncs import Sync, SyncRun
from cohortsync.downloads import csv_response
from cohortsync.row_ids import RowId
from cohortsync.services import integrations
from cohortsync.services.explain import UnknownUser
from cohortsync.services.run_errors import shown_run
from cohortsync.web.access import AdminActionDep, ProjectView, ViewDep
from cohortsync.web.pages import PageRoute, render

router = APIRouter(
    prefix="/projects/{project_id}/syncs", route_class=PageRoute, include_in_schema=False
)
HISTORY = 20


@dataclass(frozen=True)
class SyncLine:
    """A sync as its row shows it: names of what it joins, and its latest run."""

    sync: Sync
    cohort: str
    integration: Integration
    last_run: SyncRun | None

    @property
    def busy(self) -> bool:
        """A run is planning or sending (the row refreshes itself until it ends)."""
        unfinished = self.last_run is not None and self.last_run.status.unfinished
        return self.sync.running or unfinished

    @property
    def reads_back(self) -> bool:
        """The partner can list its members, so the list can be checked against ours."""
        return partner(self.integration.type).capabilities.reads_members

    @property
    def blocked(self) -> bool:
        """The latest run waits for an admin's confirm."""
        return self.last_run is not None and self.last_run.status == RunStatus.BLOCKED


def _line(state: AppState, view: ProjectView, sync: Sync, cohort: str) -> SyncLine:
    """The row as the viewer may see it (members: no partner error text)."""
    runs = state.syncs.runs(view.project.id, sync.id, limit=1)
    integration = state.integrations.get(view.project.id, sync.integration_id)
    last_run = shown_run(runs[0], view.is_admin) if runs else None
    return SyncLine(sync, cohort, integrations.shown(integration, view.is_admin), last_run)


def _row(request: Request, state: AppState, view: ProjectView, sync: Sync) -> Response:
    cohort = state.cohorts.get(view.project.id, sync.cohort_id).name
    line = _line(state, view, sync, cohort)
    return render(request, "_sync_row.html", {"view": view, "line": line})


@router.get("")
def syncs_page(request: Request, state: StateDep, view: ViewDep) -> Response:
    """Every export of the project, newest first."""
    names = {c.id: c.name for c in state.cohorts.list(view.project.id)}
    found = reversed(state.syncs.all(view.project.id))
    lines = [_line(state, view, s, names.get(s.cohort_id, "?")) for s in found]
    context = {"view": view, "lines": lines, "active": "/syncs"}
    return render(request, "syncs.html", context)


@router.get("/{sync_id}/row")
def sync_row(request: Request, sync_id: RowId, state: StateDep, view: ViewDep) -> Response:
    """One sync's row, as it is now (polled while a run is in progress)."""
    return _row(request, state, view, state.syncs.get(view.project.id, sync_id))


@router.get("/{sync_id}/runs")
def run_history(request: Request, sync_id: RowId, state: StateDep, view: ViewDep) -> Response:
    """The latest runs with their counts, skips and rejections by reason, and errors."""
    runs = [
        shown_run(r, view.is_admin) for r in state.syncs.runs(view.project.id, sync_id, HISTORY)
    ]
    url = f"/projects/{view.project.id}/syncs/{sync_id}"
    return render(request, "_run_history.html", {"runs": runs, "url": url})


@router.get("/{sync_id}/runs/{run_id}/members.csv", response_class=StreamingResponse)
def run_members_csv(sync_id: RowId, run_id: RowId, state: StateDep, view: ViewDep) -> Response:
    """The members the run skipped or the partner rejected, with the reasons, as CSV."""
    return csv_response(state.run_members.csv(view.project.id, sync_id, run_id))


@router.get("/{sync_id}/explain")
def explain(
    request: Request, sync_id: RowId, state: StateDep, view: ViewDep, distinct_id: str = ""
) -> Response:
    """Why a user is or is not on the sync's partner list, in the sync's row."""
    wanted = distinct_id.strip()
    context: dict[str, object] = {"wanted": wanted}
    if wanted:
        try:
            context["answer"] = state.explainer.explain(view.project.id, sync_id, wanted)
        except UnknownUser as unknown:
            context["unknown"] = unknown.message
    return render(request, "_explain.html", context)


@router.post("/{sync_id}/run")
async def run_now(
    request: Request, sync_id: RowId, state: StateDep, view: AdminActionDep
) -> Response:
    """Start a run now (in the background); the row then follows its progress."""
    await run_in_threadpool(
        functools.partial(
            state.syncs.run_now, view.project.id, sync_id, user_id=view.session.user.id
        )
    )
    return _row(request, state, view, state.syncs.get(view.project.id, sync_id))


@router.post("/{sync_id}/reconcile")
async def reconcile_now(
    request: Request, sync_id: RowId, state: StateDep, view: AdminActionDep
) -> Response:
    """Start a run that first reads the partner's list back and repairs drift (R-X-2)."""
    await run_in_threadpool(
        functools.partial(
            state.syncs.run_now,
            view.project.id,
            sync_id,
            reconcile=True,
            user_id=view.session.user.id,
        )
    )
    return _row(request, state, view, state.syncs.get(view.project.id, sync_id))


@router.post("/{sync_id}/stop")
def stop(request: Request, sync_id: RowId, state: StateDep, view: AdminActionDep) -> Response:
    """Stop the sync; a run in progress ends after its current batch."""
    sync = state.syncs.stop(view.project.id, sync_id, view.session.user.id)
    return _row(request, state, view, sync)


@router.post("/{sync_id}/confirm")
async def confirm(
    request: Request, sync_id: RowId, state: StateDep, view: AdminActionDep
) -> Response:
    """Let a blocked run go ahead (audited)."""
    await run_in_threadpool(state.syncs.confirm, view.project.id, sync_id, view.session.user.id)
    return _row(request, state, view, state.syncs.get(view.project.id, sync_id))
