"""Partner events in (SPEC §11 ``POST /webhooks/{integration_id}``), and rotating the secret
partners sign or present with."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, SecretStr

from cohortsync.api.deps import CurrentUser
from cohortsync.app_state import StateDep
from cohortsync.body_limit import BodyLimit
from cohortsync.domain.accounts import require_admin
from cohortsync.metrics import PARTNER_EVENTS_IN
from cohortsync.row_ids import RowId

router = APIRouter(tags=["partner events"])


class PartnerKey(BaseModel):
    """A signing key the partner made itself, to use as the webhook secret."""

    secret: SecretStr | None = None


@router.post("/webhooks/{integration_id}")
async def receive(integration_id: RowId, request: Request, state: StateDep) -> JSONResponse:
    """A partner's event payload (Iterable system webhook, CleverTap, Xtremepush), authenticated
    with the integration's webhook secret. Invalid items are listed by position (400) while the
    valid ones are stored; a replay is stored once."""
    service = state.partner_events
    limit = service.max_body_bytes
    advice = "send fewer events a call (COHORTSYNC_WEBHOOK_MAX_BODY_BYTES)"
    raw = await BodyLimit(limit, f"body is larger than {limit:,} bytes; {advice}").read(request)
    result = await anyio.to_thread.run_sync(
        service.receive, integration_id, dict(request.headers), raw
    )
    PARTNER_EVENTS_IN.labels(result.source).inc(result.received)
    body = result.as_json()
    if not result.failed:
        return JSONResponse(body)
    first = result.failed[0]
    count = len(result.failed)
    body["error"] = {
        "code": "invalid_record",
        "message": f"{count} event(s) could not be stored; the first, at {first.index}: "
        f"{first.message}",
        "path": first.field,
    }
    return JSONResponse(body, status_code=400)


@router.post("/api/v1/projects/{project_id}/integrations/{integration_id}/webhook-secret")
def rotate_secret(
    project_id: RowId,
    integration_id: RowId,
    user: CurrentUser,
    state: StateDep,
    body: PartnerKey | None = None,
) -> dict[str, Any]:
    """A new webhook secret, shown once; the previous one keeps working for a day. For a partner
    that makes its own signing key (Xtremepush), send it as ``{"secret": …}``: it becomes the
    secret and is not shown back."""
    require_admin(user, project_id)
    key = body.secret.get_secret_value() if body is not None and body.secret else None
    rotated = state.integrations.rotate_webhook_secret(
        project_id, integration_id, key, user_id=user.id
    )
    return rotated.as_json()
