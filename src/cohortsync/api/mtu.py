"""MTU API (SPEC §11): a month's report, and the exemption list it reads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from cohortsync.api.deps import CurrentUser
from cohortsync.app_state import StateDep
from cohortsync.domain.accounts import project_role
from cohortsync.row_ids import RowId
from cohortsync.services import mtu

router = APIRouter(tags=["mtu"])


@router.get("/api/v1/projects/{project_id}/mtu")
def mtu_report(
    project_id: RowId,
    user: CurrentUser,
    state: StateDep,
    month: str | None = Query(default=None, description="YYYY-MM (UTC); default: this month"),
) -> dict[str, Any]:
    """MTU for a calendar month, the events, what was exempt by partner and name, and the users
    partners reached only through exempt events (not counted)."""
    project_role(user, project_id)
    chosen = mtu.Month.parse(month) if month else mtu.Month.of(state.clock.now())
    return state.mtu.report(project_id, chosen).as_json()


@router.get("/api/v1/mtu/exemptions")
def exemptions(user: CurrentUser, state: StateDep) -> list[dict[str, str]]:
    """The exemption list (operators edit it with ``cohortsync mtu exemptions``)."""
    return [e._asdict() for e in state.mtu.exemptions()]
