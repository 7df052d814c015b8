"""Audit log API (SPEC §11, R-OBS-1): the project's admin actions, newest first; admins only.

The answer is the list SPEC §11 names; a next (older) page exists when the ``Link`` header has
``rel="next"`` (its URL carries ``before=<id of the last entry>``).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response

from cohortsync.api.deps import CurrentUser
from cohortsync.app_state import StateDep
from cohortsync.domain.accounts import require_admin
from cohortsync.domain.audit import MAX_ID, MAX_PAGE
from cohortsync.row_ids import RowId
from cohortsync.services.audit import audit_query

router = APIRouter(prefix="/api/v1/projects/{project_id}", tags=["audit"])


@router.get("/audit-log")
def audit_log(
    project_id: RowId,
    request: Request,
    response: Response,
    user: CurrentUser,
    state: StateDep,
    limit: int = Query(default=50, ge=1, le=MAX_PAGE, description="entries per page"),
    before: int | None = Query(
        default=None,
        ge=1,
        le=MAX_ID,
        description="only entries older than this id (the next page)",
    ),
    action: str | None = Query(
        default=None, max_length=100, description="action prefix, e.g. 'sync.' or 'sync.stop'"
    ),
    from_day: str | None = Query(
        default=None, alias="from", description="first day, YYYY-MM-DD (UTC)"
    ),
    to_day: str | None = Query(default=None, alias="to", description="last day, YYYY-MM-DD (UTC)"),
    scope: Literal["project", "all"] = Query(
        default="project",
        description="'all' adds the actions outside any project (people, tokens, sign-ins, "
        "keys, MTU exemptions)",
    ),
) -> list[dict[str, Any]]:
    """Who did what to which target, and when, newest first (secrets masked in details)."""
    require_admin(user, project_id)
    query = audit_query(
        project_id,
        limit=limit,
        before=before,
        action=action,
        from_day=from_day,
        to_day=to_day,
        include_global=scope == "all",
    )
    page = state.audit.page(query)
    if page.next_before is not None:
        following = request.url.include_query_params(before=page.next_before)
        response.headers["Link"] = f'<{following}>; rel="next"'
    return [entry.as_json() for entry in page.entries]
