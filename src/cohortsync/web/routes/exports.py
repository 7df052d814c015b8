"""Export to → partner: the dialog (one-time or dynamic), its preview, and Start Sync."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from starlette.concurrency import run_in_threadpool

from cohortsync.app_state import StateDep
from cohortsync.destinations import registry
from cohortsync.row_ids import RowId
from cohortsync.web.access import AdminActionDep, AdminViewDep
from cohortsync.web.pages import PageRoute, go_to, render

router = APIRouter(
    prefix="/projects/{project_id}/cohorts/{cohort_id}/export/{integration_id}",
    route_class=PageRoute,
    include_in_schema=False,
)


@router.get("")
def export_dialog(
    request: Request, cohort_id: RowId, integration_id: RowId, state: StateDep, view: AdminViewDep
) -> Response:
    """Choose one-time or dynamic; the preview loads while the admin reads."""
    cohort = state.cohorts.get(view.project.id, cohort_id)
    integration = state.integrations.get(view.project.id, integration_id)
    interval = registry.partner(integration.type).capabilities.interval
    context = {
        "view": view,
        "cohort": cohort,
        "integration": integration,
        "interval_seconds": interval.total_seconds(),
        "list_name": registry.list_name(integration.settings, cohort.name, cohort.id),
    }
    return render(request, "_export_dialog.html", context)


@router.get("/preview")
async def export_preview(
    request: Request, cohort_id: RowId, integration_id: RowId, state: StateDep, view: AdminViewDep
) -> Response:
    """What a run would add, remove and skip (by reason), and identity coverage; sends nothing."""
    preview = await run_in_threadpool(
        state.syncs.preview, view.project.id, cohort_id, integration_id
    )
    return render(request, "_export_preview.html", {"preview": preview.as_json()})


@router.post("")
async def start_sync(
    request: Request,
    cohort_id: RowId,
    integration_id: RowId,
    state: StateDep,
    view: AdminActionDep,
    mode: Annotated[str, Form()],
) -> Response:
    """Start the export; its first run is due at once. The Syncs page shows it."""
    sync = await run_in_threadpool(
        lambda: state.syncs.export(
            view.project.id, cohort_id, integration_id, mode, user_id=view.session.user.id
        )
    )
    return go_to(request, f"/projects/{view.project.id}/syncs#sync-{sync.id}")
