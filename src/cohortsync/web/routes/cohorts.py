"""The Cohorts page: the list with counts, a cohort's members, and static uploads (CSV)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from cohortsync.app_state import AppState, StateDep
from cohortsync.body_limit import BodyLimit
from cohortsync.domain.cohort_guard import CohortEditor
from cohortsync.domain.cohorts import Cohort, DefinitionError
from cohortsync.domain.integrations import IntegrationStatus
from cohortsync.row_ids import RowId
from cohortsync.services.cohorts import members_from_csv
from cohortsync.web.access import MemberActionDep, ProjectView, ViewDep
from cohortsync.web.pages import PageRoute, body_limit, go_to, render

router = APIRouter(
    prefix="/projects/{project_id}/cohorts", route_class=PageRoute, include_in_schema=False
)

PAGE_SIZE = 50
MEMBER_COLUMNS = ("$email", "$first_name", "$last_name", "$phone")
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # the file; its entries are bounded as the API's are
TOO_LARGE = "the file is over 50 MB; upload it through the API in parts"
FORM_OVERHEAD = 64 * 1024  # the name, the CSRF token and the multipart boundaries


def _export_targets(state: AppState, view: ProjectView) -> list[Any]:
    """The integrations an admin may export to now (none are offered to members)."""
    if not view.is_admin:
        return []
    return [
        i
        for i in state.integrations.list(view.project.id)
        if i.status == IntegrationStatus.CONNECTED
    ]


@router.get("")
def cohorts_page(request: Request, state: StateDep, view: ViewDep) -> Response:
    """Every cohort of the project; counts load one by one."""
    found = state.cohorts.list(view.project.id)
    context = {
        "view": view,
        "cohorts": found,
        "targets": _export_targets(state, view),
        # only a member's menu reads it (admins may change any cohort)
        "guarded": set() if view.is_admin else state.cohorts.guarded(view.project.id),
        "active": "/cohorts",
    }
    return render(request, "cohorts.html", context)


@router.get("/{cohort_id}/count")
def cohort_count(cohort_id: RowId, state: StateDep, view: ViewDep) -> Response:
    """How many users are in the cohort now (a fragment of the list); a stored definition
    that breaks the bounds is shown as invalid, not counted."""
    try:
        count = state.cohorts.count(view.project.id, cohort_id)
    except DefinitionError:
        return Response("invalid definition", media_type="text/html")
    return Response(f"{count:,}", media_type="text/html")


def _members(state: AppState, view: ProjectView, cohort_id: RowId, cursor: str | None) -> Any:
    return state.cohorts.member_page(
        view.project.id, cohort_id, limit=PAGE_SIZE, cursor=cursor, properties=MEMBER_COLUMNS
    )


@router.get("/{cohort_id}")
def cohort_page(request: Request, cohort_id: RowId, state: StateDep, view: ViewDep) -> Response:
    """One cohort: its definition, its count, and the first page of its members (or why its
    stored definition cannot be evaluated)."""
    cohort = state.cohorts.get(view.project.id, cohort_id)
    page = None if cohort.problem else _members(state, view, cohort_id, None)
    shown = cohort.as_json()["definition"]
    context = {
        "view": view,
        "cohort": cohort,
        "definition": json.dumps(shown, indent=2) if shown else None,
        "page": page,
        # only a member's menu reads it (admins may change any cohort)
        "guarded": set() if view.is_admin else state.cohorts.guarded(view.project.id),
        "columns": MEMBER_COLUMNS,
        "targets": _export_targets(state, view),
        "active": "/cohorts",
    }
    return render(request, "cohort.html", context)


@router.get("/{cohort_id}/members")
def member_rows(
    request: Request, cohort_id: RowId, state: StateDep, view: ViewDep, cursor: str
) -> Response:
    """The next page of members (rows appended to the table)."""
    context = {
        "view": view,
        "cohort_id": cohort_id,
        "page": _members(state, view, cohort_id, cursor),
        "columns": MEMBER_COLUMNS,
    }
    return render(request, "_member_rows.html", context)


@router.post("/static")
@body_limit(MAX_UPLOAD_BYTES + FORM_OVERHEAD, TOO_LARGE)
async def upload_static(
    request: Request,
    state: StateDep,
    view: MemberActionDep,
    name: Annotated[str, Form(max_length=255)],
    file: UploadFile,
) -> Response:
    """A static cohort from a CSV with a ``distinct_id`` or ``email`` column (as the API takes)."""
    raw = await file.read(MAX_UPLOAD_BYTES + 1)
    BodyLimit(MAX_UPLOAD_BYTES, TOO_LARGE).refuse(len(raw))  # sent without a length

    def save() -> Cohort:
        ids, emails = members_from_csv(raw.decode("utf-8-sig", "replace"))
        return state.cohorts.create_static(
            view.project.id, name, ids, emails, created_by=view.session.user.id
        )

    cohort = await run_in_threadpool(save)
    return go_to(request, f"/projects/{view.project.id}/cohorts/{cohort.id}")


@router.post("/{cohort_id}/delete")
def delete_cohort(
    request: Request, cohort_id: RowId, state: StateDep, view: MemberActionDep
) -> Response:
    """Delete a cohort: a member may not delete one that feeds an active export (403), an admin
    stops its exports first (409 naming them)."""
    editor = CohortEditor(view.session.user.id, is_admin=view.is_admin)
    state.cohorts.delete(view.project.id, cohort_id, editor)
    return go_to(request, f"/projects/{view.project.id}/cohorts")
