"""Cohorts API (SPEC §11): create, list, get, update, delete, static uploads, members."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from cohortsync.api.deps import CurrentUser
from cohortsync.app_state import StateDep
from cohortsync.body_limit import BodyLimit
from cohortsync.domain.accounts import Role, User, project_role
from cohortsync.domain.cohort_guard import CohortEditor
from cohortsync.domain.cohorts import Cohort
from cohortsync.domain.definition_bounds import MAX_DESCRIPTION_CHARS
from cohortsync.domain.errors import BatchError
from cohortsync.row_ids import RowId
from cohortsync.services import cohorts

router = APIRouter(prefix="/api/v1/projects/{project_id}/cohorts", tags=["cohorts"])
STATIC_BODY = BodyLimit(cohorts.MAX_STATIC_BYTES, cohorts.STATIC_TOO_LARGE)


def _editor(user: User, project_id: RowId) -> CohortEditor:
    """The user as an editor of the project's cohorts (NotFound outside the project)."""
    return CohortEditor(user.id, is_admin=project_role(user, project_id) is Role.ADMIN)


class CohortIn(BaseModel):
    """A dynamic cohort to create."""

    name: str = Field(min_length=1, max_length=255)
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    definition: dict[str, Any]


class CohortChange(BaseModel):
    """Fields to change; absent ones stay."""

    name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)
    definition: dict[str, Any] | None = None


class StaticCohortIn(BaseModel):
    """A static cohort from lists of ids or emails."""

    name: str = Field(min_length=1, max_length=255)
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    distinct_ids: list[str] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)


@router.post("", status_code=201)
def create(project_id: RowId, body: CohortIn, user: CurrentUser, state: StateDep) -> dict[str, Any]:
    """Create a dynamic cohort; a bad definition is a 400 naming the JSON path."""
    project_role(user, project_id)
    cohort = state.cohorts.create(project_id, body.name, body.definition, body.description, user.id)
    return cohort.as_json()


@router.post("/static", status_code=201)
async def create_static(
    project_id: RowId,
    request: Request,
    user: CurrentUser,
    state: StateDep,
    name: Annotated[str | None, Query(description="cohort name, for a CSV upload")] = None,
) -> dict[str, Any]:
    """Create a static cohort from JSON ``{name, distinct_ids?, emails?}`` or a CSV body
    (``Content-Type: text/csv`` with a distinct_id or email column, name in ``?name=``); at
    most 16 MiB and 100,000 entries (413 beyond)."""
    project_role(user, project_id)
    raw = await STATIC_BODY.read(request)
    is_csv = request.headers.get("content-type", "").startswith("text/csv")
    if is_csv and not name:
        raise BatchError("a CSV upload needs the cohort name in ?name=")

    def save() -> Cohort:
        if is_csv:
            ids, emails = cohorts.members_from_csv(raw.decode("utf-8-sig", "replace"))
            return state.cohorts.create_static(project_id, name or "", ids, emails, "", user.id)
        body = _static_json(raw)
        return state.cohorts.create_static(
            project_id, body.name, body.distinct_ids, body.emails, body.description, user.id
        )

    return (await run_in_threadpool(save)).as_json()


def _static_json(raw: bytes) -> StaticCohortIn:
    try:
        return StaticCohortIn.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise BatchError(problems) from None


@router.get("")
def list_all(project_id: RowId, user: CurrentUser, state: StateDep) -> list[dict[str, Any]]:
    """The project's cohorts."""
    project_role(user, project_id)
    return [c.as_json() for c in state.cohorts.list(project_id)]


@router.get("/{cohort_id}")
def get(project_id: RowId, cohort_id: RowId, user: CurrentUser, state: StateDep) -> dict[str, Any]:
    """One cohort, with its member count now (null, with ``invalid``, for a stored definition
    that breaks the bounds)."""
    project_role(user, project_id)
    cohort, count = state.cohorts.with_count(project_id, cohort_id)
    return {**cohort.as_json(), "count": count}


@router.put("/{cohort_id}")
def update(
    project_id: RowId, cohort_id: RowId, body: CohortChange, user: CurrentUser, state: StateDep
) -> dict[str, Any]:
    """Rename, describe or redefine a cohort (admins only for one that feeds an active
    export: 403 naming the exports)."""
    cohort = state.cohorts.update(
        project_id,
        cohort_id,
        name=body.name,
        description=body.description,
        definition=body.definition,
        editor=_editor(user, project_id),
    )
    return cohort.as_json()


@router.delete("/{cohort_id}", status_code=204)
def delete(project_id: RowId, cohort_id: RowId, user: CurrentUser, state: StateDep) -> Response:
    """Delete a cohort: refused while another cohort refers to it (409), to members while it
    feeds an active export (403), and to admins until those exports are stopped (409)."""
    state.cohorts.delete(project_id, cohort_id, _editor(user, project_id))
    return Response(status_code=204)


@router.get("/{cohort_id}/members")
def members(
    project_id: RowId,
    cohort_id: RowId,
    user: CurrentUser,
    state: StateDep,
    limit: Annotated[int, Query(ge=1, le=cohorts.MAX_PAGE)] = 100,
    cursor: str | None = None,
    properties: Annotated[str | None, Query(description="comma-separated names")] = None,
) -> dict[str, Any]:
    """The members now: count, one page (by distinct_id), and the cursor of the next page."""
    project_role(user, project_id)
    chosen = [p.strip() for p in properties.split(",") if p.strip()] if properties else []
    page = state.cohorts.member_page(
        project_id, cohort_id, limit=limit, cursor=cursor, properties=chosen
    )
    return {"count": page.count, "members": page.members, "next_cursor": page.next_cursor}
