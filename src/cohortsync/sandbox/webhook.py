"""A receiver of Mixpanel's cohort-webhook protocol (the contract is in
``cohortsync.destinations.webhook``): keeps each cohort's members, answers per the protocol."""

from __future__ import annotations

import base64
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cohortsync.credentials import new_secret
from cohortsync.sandbox.faults import (
    PartnerList,
    SandboxState,
    control_routes,
    json_body,
    partner_route,
)

ACTIONS = ("members", "add_members", "remove_members")
MAX_MEMBERS = 1000


def _answer(action: Any, status: int, message: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"action": action, "status": "success" if message is None else "failure"}
    if message is not None:
        body["error"] = {"message": message, "code": status}
    return JSONResponse(body, status_code=status)


class WebhookSandbox(SandboxState):
    """A customer's webhook server with optional Basic credentials."""

    def __init__(self, username: str = "sandbox", password: str | None = None) -> None:
        super().__init__("webhook", {"username": username, "password": password or new_secret()})
        self.sessions: dict[str, list[dict[str, Any]]] = {}  # session id → page_info seen
        self.last_parameters: dict[str, Any] = {}  # of the latest message, members left out

    def rate_limit_reply(self) -> Response:
        """A 429 in the protocol's reply shape."""
        return _answer(None, 429, "slow down")

    def refuse(self, request: Request) -> Response | None:
        """401 unless the Basic credentials match (when the receiver has any)."""
        if self.faults.bad_credentials:
            return _answer(None, 401, "bad credentials")
        if not self.credentials.get("username") and not self.credentials.get("password"):
            return None
        pair = f"{self.credentials['username']}:{self.credentials['password']}".encode()
        if request.headers.get("authorization") != "Basic " + base64.b64encode(pair).decode():
            return _answer(None, 401, "bad credentials")
        return None

    async def receive(self, request: Request) -> Response:
        """One protocol message: replace, add to or remove from the cohort."""
        body = await json_body(request)
        action = body.get("action") if isinstance(body, dict) else None
        parameters = body.get("parameters") if isinstance(body, dict) else None
        if action not in ACTIONS or not isinstance(parameters, dict):
            return _answer(action, 400, "'action' and 'parameters' are required")
        members = parameters.get("members")
        if not isinstance(members, list) or len(members) > MAX_MEMBERS:
            return _answer(action, 400, f"'members' must be a list of at most {MAX_MEMBERS}")
        cohort_id = str(parameters.get("mixpanel_cohort_id"))
        with self.lock:
            self.last_parameters = {k: v for k, v in parameters.items() if k != "members"}
            self.sessions.setdefault(str(parameters.get("mixpanel_session_id")), []).append(
                dict(parameters.get("page_info") or {})
            )
            target = self.lists.setdefault(
                cohort_id, PartnerList(cohort_id, str(parameters.get("mixpanel_cohort_name")))
            )
            if action == "members":
                target.members.clear()
            self.received += len(members)
            for member in members:
                key = str(member.get("mixpanel_distinct_id"))
                if action == "remove_members":
                    target.members.pop(key, None)
                else:
                    target.members[key] = dict(member)
        return _answer(action, 200)


def create_app(state: WebhookSandbox) -> Starlette:
    """The receiver's ASGI app: the protocol at ``/cohorts`` (and at ``/``)."""
    return Starlette(
        routes=[
            partner_route(state, "/cohorts", "POST", state.receive),
            partner_route(state, "/", "POST", state.receive),
            *control_routes(state),
        ]
    )
