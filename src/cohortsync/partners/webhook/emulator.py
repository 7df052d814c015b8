"""A receiver of Mixpanel's cohort-webhook protocol (the contract is in
``cohortsync.partners.webhook.destination``): keeps each cohort's members, answers per the protocol.

``add_members`` and ``remove_members`` change the cohort at once. The pages of a ``members``
session are gathered apart and replace the cohort's membership once every page of the session
has arrived (a page sent twice counts once); until then the cohort keeps what it held. The
refresh is the whole truth: each member then holds exactly what its page carried."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
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


@dataclass
class Refresh:
    """The pages of one ``members`` session received so far."""

    total_pages: int
    pages: set[int] = field(default_factory=set)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether every page 1 … total_pages has arrived."""
        return self.pages >= set(range(1, self.total_pages + 1))


def page_numbers(page_info: Any) -> tuple[int, int]:
    """``(page_count, total_pages)`` of a message; one page of one without ``page_info``."""
    info = page_info if isinstance(page_info, dict) else {}
    count, total = info.get("page_count", 1), info.get("total_pages", 1)
    valid = isinstance(count, int) and isinstance(total, int) and 1 <= count <= total
    return (count, total) if valid else (1, 1)


class WebhookSandbox(SandboxState):
    """A customer's webhook server with optional Basic credentials."""

    def __init__(self, username: str = "sandbox", password: str | None = None) -> None:
        super().__init__("webhook", {"username": username, "password": password or new_secret()})
        self.sessions: dict[str, list[dict[str, Any]]] = {}  # session id → page_info seen
        self.last_parameters: dict[str, Any] = {}  # of the latest message, members left out
        self.refreshes: dict[tuple[str, str], Refresh] = {}  # (session, cohort) → pages so far

    def reset(self) -> None:
        """Forget lists, faults, records, sessions and unfinished refreshes."""
        super().reset()
        with self.lock:
            self.sessions.clear()
            self.refreshes.clear()
            self.last_parameters = {}

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
        if not all(isinstance(m, dict) and "mixpanel_distinct_id" in m for m in members):
            return _answer(action, 400, "each member needs a 'mixpanel_distinct_id'")
        cohort_id = str(parameters.get("mixpanel_cohort_id"))
        session_id = str(parameters.get("mixpanel_session_id"))
        with self.lock:
            self.last_parameters = {k: v for k, v in parameters.items() if k != "members"}
            self.sessions.setdefault(session_id, []).append(dict(parameters.get("page_info") or {}))
            target = self.lists.setdefault(
                cohort_id, PartnerList(cohort_id, str(parameters.get("mixpanel_cohort_name")))
            )
            self.received += len(members)
            keyed = {str(m.get("mixpanel_distinct_id")): dict(m) for m in members}
            if action == "members":
                self._refresh(target, session_id, parameters.get("page_info"), keyed)
            elif action == "remove_members":
                for key in keyed:
                    target.members.pop(key, None)
            else:
                target.members.update(keyed)
        return _answer(action, 200)

    def _refresh(
        self,
        target: PartnerList,
        session_id: str,
        page_info: Any,
        members: dict[str, dict[str, Any]],
    ) -> None:
        """Gather one page of a ``members`` session (under the lock); the last page to arrive
        makes the gathered members the cohort's whole membership."""
        page_count, total_pages = page_numbers(page_info)
        refresh = self.refreshes.setdefault((session_id, target.id), Refresh(total_pages))
        refresh.pages.add(page_count)
        refresh.members.update(members)
        if refresh.complete:
            target.members = dict(refresh.members)
            del self.refreshes[(session_id, target.id)]


def create_app(state: WebhookSandbox) -> Starlette:
    """The receiver's ASGI app: the protocol at ``/cohorts`` (and at ``/``)."""
    return Starlette(
        routes=[
            partner_route(state, "/cohorts", "POST", state.receive),
            partner_route(state, "/", "POST", state.receive),
            *control_routes(state),
        ]
    )
