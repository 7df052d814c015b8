"""The Audit log page (admins only): who did what to which target and when, newest first, a
page at a time, filtered by action and day; the same entries as ``GET …/audit-log``."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response

from cohortsync.app_state import StateDep
from cohortsync.services.audit import audit_query
from cohortsync.web.access import AdminViewDep
from cohortsync.web.pages import PageRoute, render

router = APIRouter(
    prefix="/projects/{project_id}/audit", route_class=PageRoute, include_in_schema=False
)
PAGE = 50


@router.get("")
def audit_page(
    request: Request,
    state: StateDep,
    view: AdminViewDep,
    before: int | None = None,
    action: str = "",
    from_day: str = "",
    to_day: str = "",
    scope: str = "project",
) -> Response:
    """One page of the project's audit log (with ``scope=all``, also the actions outside any
    project: people, tokens, sign-ins, keys, MTU exemptions)."""
    everything = scope == "all"
    query = audit_query(
        view.project.id,
        limit=PAGE,
        before=before,
        action=action.strip() or None,
        from_day=from_day or None,
        to_day=to_day or None,
        include_global=everything,
    )
    page = state.audit.page(query)
    filters = {"action": action, "from_day": from_day, "to_day": to_day}
    if everything:
        filters["scope"] = "all"
    kept = {k: v for k, v in filters.items() if v}
    older = None
    if page.next_before is not None:
        older = f"?{urlencode({**kept, 'before': page.next_before})}"
    context = {
        "view": view,
        "active": "/audit",
        "entries": page.entries,
        "filters": filters,
        "everything": everything,
        "older": older,
        "newest": f"?{urlencode(kept)}" if before is not None else None,
    }
    return render(request, "audit.html", context)
