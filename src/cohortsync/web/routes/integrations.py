"""The Integrations page: a card per partner, Connect dialogs, Disconnect, webhook secrets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from cohortsync.app_state import AppState, StateDep
from cohortsync.destinations import registry
from cohortsync.domain.integrations import Integration, IntegrationStatus
from cohortsync.ingest.partners.registry import generates_key
from cohortsync.row_ids import RowId
from cohortsync.services import integrations
from cohortsync.web.access import AdminActionDep, AdminViewDep, ProjectView, ViewDep
from cohortsync.web.pages import PageRoute, render
from cohortsync.web.partner_forms import connect_fields, read_connect_form

router = APIRouter(
    prefix="/projects/{project_id}/integrations", route_class=PageRoute, include_in_schema=False
)


def _advanced(state: AppState) -> tuple[str, ...]:
    """Settings offered under "More options": the list name, and a custom endpoint where the
    operator allows them (COHORTSYNC_ALLOW_CUSTOM_ENDPOINTS)."""
    custom = ("base_url",) if state.settings.allow_custom_endpoints else ()
    return ("list_name_template", *custom)


def _cards(request: Request, state: AppState, view: ProjectView) -> dict[str, Any]:
    """What the cards show: each partner with its integrations that are not disconnected."""
    current = [
        integrations.shown(i, view.is_admin)
        for i in state.integrations.list(view.project.id)
        if i.status != IntegrationStatus.DISCONNECTED
    ]
    partners = [
        (spec, [i for i in current if i.type == spec.type]) for spec in registry.PARTNERS.values()
    ]
    return {
        "view": view,
        "partners": partners,
        "origin": str(request.base_url).rstrip("/"),
        "makes_own_key": {spec.type for spec, _ in partners if generates_key(spec.type)},
    }


@router.get("")
def integrations_page(request: Request, state: StateDep, view: ViewDep) -> Response:
    """Every partner, what is connected to it, and (for admins) Connect."""
    context = {**_cards(request, state, view), "active": "/integrations"}
    return render(request, "integrations.html", context)


@router.get("/connect/{kind}")
def connect_dialog(request: Request, kind: str, state: StateDep, view: AdminViewDep) -> Response:
    """The Connect dialog with exactly this partner's fields (admins only)."""
    spec = registry.partner(kind)
    context = {"view": view, "spec": spec, "fields": connect_fields(spec)}
    return render(request, "_connect_dialog.html", {**context, "advanced": _advanced(state)})


@router.post("/connect/{kind}")
async def connect(request: Request, kind: str, state: StateDep, view: AdminActionDep) -> Response:
    """Check the credentials with the partner and store the integration; the dialog then shows
    Connected (with the webhook secret, once) or the partner's own error."""
    spec = registry.partner(kind)
    form = await request.form()
    credentials, settings = read_connect_form(spec, form, _advanced(state))
    name = form.get("name")
    integration = await run_in_threadpool(
        state.integrations.connect,
        view.project.id,
        spec.type,
        credentials,
        settings,
        name if isinstance(name, str) and name.strip() else None,
        view.session.user.id,
    )
    return _result(request, state, view, integration)


def _result(
    request: Request,
    state: AppState,
    view: ProjectView,
    integration: Integration,
    *,
    rotated: bool = False,
) -> Response:
    """The dialog's answer, with the cards refreshed out of band; it may hold a secret shown
    once, so no cache keeps it."""
    context = {**_cards(request, state, view), "integration": integration, "rotated": rotated}
    return render(request, "_connect_result.html", context, headers={"Cache-Control": "no-store"})


@router.post("/{integration_id}/disconnect")
def disconnect(
    request: Request, integration_id: RowId, state: StateDep, view: AdminActionDep
) -> Response:
    """Forget the credentials and stop the integration's syncs and webhook."""
    integrations.disconnect(
        state.integrations,
        state.partner_events,
        view.project.id,
        integration_id,
        view.session.user.id,
    )
    return render(request, "_integration_cards.html", _cards(request, state, view))


@router.post("/{integration_id}/webhook-secret")
async def rotate_secret(
    request: Request, integration_id: RowId, state: StateDep, view: AdminActionDep
) -> Response:
    """A new webhook secret, shown once; the previous one keeps working for the overlap. With
    a ``secret`` field, the signing key the partner made (Xtremepush's) becomes the secret."""
    typed = (await request.form()).get("secret")  # sent by the partner's-key form only
    key = typed if isinstance(typed, str) else None
    integration = await run_in_threadpool(
        state.integrations.rotate_webhook_secret,
        view.project.id,
        integration_id,
        key,
        view.session.user.id,
    )
    return _result(request, state, view, integration, rotated=True)
