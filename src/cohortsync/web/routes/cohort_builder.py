"""The cohort builder: its page, the parts it adds (groups, conditions, event filters), the live
count of what is built so far, and saving it as a cohort."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from cohortsync.app_state import AppState, StateDep
from cohortsync.domain.cohorts import Cohort
from cohortsync.domain.errors import BatchError
from cohortsync.web.access import MemberActionDep, ProjectView, ViewDep
from cohortsync.web.builder import builder_options, definition_from_form, new_id
from cohortsync.web.pages import PageRoute, go_to, render

router = APIRouter(
    prefix="/projects/{project_id}/cohorts", route_class=PageRoute, include_in_schema=False
)


def _context(state: AppState, view: ProjectView, **parts: Any) -> dict[str, Any]:
    names = state.cohorts.names(view.project.id)
    return {"view": view, **builder_options(names), **parts}


@router.get("/new")
def builder_page(request: Request, state: StateDep, view: ViewDep) -> Response:
    """The builder, with one group of one condition to start from."""
    context = _context(state, view, group_id=new_id("g"), condition_id=new_id("c"))
    return render(request, "cohort_new.html", {**context, "active": "/cohorts"})


@router.get("/builder/group")
def new_group(request: Request, state: StateDep, view: ViewDep) -> Response:
    """Another group (joined to the others by the top-level any/all)."""
    context = _context(state, view, group_id=new_id("g"), condition_id=new_id("c"))
    return render(request, "_builder_group.html", context)


@router.get("/builder/condition")
def new_condition(request: Request, state: StateDep, view: ViewDep, group: str) -> Response:
    """Another condition in ``group``."""
    context = _context(state, view, group_id=group, condition_id=new_id("c"))
    return render(request, "_builder_condition.html", context)


@router.get("/builder/filter")
def new_filter(request: Request, state: StateDep, view: ViewDep, condition: str) -> Response:
    """Another property filter of an event condition."""
    context = _context(state, view, condition_id=condition, filter_id=new_id("w"))
    return render(request, "_builder_filter.html", context)


@router.post("/count")
async def live_count(request: Request, state: StateDep, view: MemberActionDep) -> Response:
    """How many users what is built so far holds now, or what is still missing."""
    context: dict[str, Any] = {"count": None, "problem": None, "definition": None}
    try:
        definition = definition_from_form(await request.form())
        context["definition"] = json.dumps(definition, indent=2)

        def count() -> int:
            return state.cohorts.count_definition(view.project.id, definition)

        context["count"] = await run_in_threadpool(count)
    except BatchError as error:
        context["problem"] = error.message
    return render(request, "_live_count.html", context)


@router.post("")
async def create(request: Request, state: StateDep, view: MemberActionDep) -> Response:
    """Save what is built as a dynamic cohort and open it."""
    form = await request.form()
    definition = definition_from_form(form)
    name, description = form.get("name"), form.get("description")

    def save() -> Cohort:
        return state.cohorts.create(
            view.project.id,
            name if isinstance(name, str) else "",
            definition,
            description if isinstance(description, str) else "",
            view.session.user.id,
        )

    cohort = await run_in_threadpool(save)
    return go_to(request, f"/projects/{view.project.id}/cohorts/{cohort.id}")
