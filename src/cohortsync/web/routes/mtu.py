"""The MTU page: a month's MTU, what was exempt by partner and name, and MTU by month."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from cohortsync.app_state import AppState, StateDep
from cohortsync.services import mtu
from cohortsync.web.access import ViewDep
from cohortsync.web.mtu_chart import months_up_to, mtu_chart
from cohortsync.web.pages import PageRoute, render

router = APIRouter(
    prefix="/projects/{project_id}/mtu", route_class=PageRoute, include_in_schema=False
)
CHART_MONTHS = 12


def _month(state: AppState, month: str | None) -> mtu.Month:
    return mtu.Month.parse(month) if month else mtu.Month.of(state.clock.now())


@router.get("")
async def mtu_page(
    request: Request, state: StateDep, view: ViewDep, month: str | None = None
) -> Response:
    """The chosen month's report (this month by default)."""
    chosen = _month(state, month)
    report = await run_in_threadpool(state.mtu.report, view.project.id, chosen)
    context = {
        "view": view,
        "month": str(chosen),
        "report": report.as_json(),
        "active": "/mtu",
        "recount_minutes": int(mtu.MTU_RECOUNT_AFTER.total_seconds() // 60),
    }
    return render(request, "mtu.html", context)


@router.get("/chart")
async def mtu_by_month(
    request: Request, state: StateDep, view: ViewDep, month: str | None = None
) -> Response:
    """MTU of the twelve months up to the chosen one, as bars."""
    chosen = _month(state, month)
    months = months_up_to(chosen, CHART_MONTHS)

    figures = await run_in_threadpool(state.mtu_history.by_month, view.project.id, months)
    chart = mtu_chart([(str(m), value) for m, value in figures], str(chosen))
    return render(request, "_mtu_chart.html", {"chart": chart})
