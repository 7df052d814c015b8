"""An emulator of Postbox's Lists API (the contract is in
``tests.destinations.fixture_partner.destination``), on the shared sandbox machinery: fault
knobs, the lists it holds and the ``/_sandbox`` control API come from ``SandboxState``."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cohortsync.credentials import new_secret
from cohortsync.sandbox.faults import SandboxState, control_routes, json_body, partner_route

MAX_MEMBERS = 100


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


class PostboxSandbox(SandboxState):
    """One Postbox account with one API token."""

    def __init__(self, api_token: str | None = None) -> None:
        super().__init__("postbox", {"api_token": api_token or new_secret()})

    def rate_limit_reply(self) -> Response:
        """Postbox's 429 envelope."""
        return _error(429, "rate_limited", "Too many requests")

    def refuse(self, request: Request) -> Response | None:
        """401 unless the bearer token is the account's."""
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not self.accepts("api_token", token):
            return _error(401, "unauthorized", "Invalid API token")
        return None

    async def me(self, _request: Request) -> Response:
        """``GET /v1/me``."""
        return JSONResponse({"account": "sandbox"})

    async def find(self, request: Request) -> Response:
        """``GET /v1/lists?name=``: the lists of that name (every list without one)."""
        name = request.query_params.get("name")
        with self.lock:
            found = [
                {"id": x.id, "name": x.name}
                for x in self.lists.values()
                if name is None or x.name == name
            ]
        return JSONResponse({"lists": found})

    async def get(self, request: Request) -> Response:
        """``GET /v1/lists/{id}``."""
        with self.lock:
            found = self.lists.get(request.path_params["list_id"])
        if found is None:
            return _error(404, "list_not_found", "No such list")
        return JSONResponse({"id": found.id, "name": found.name})

    async def create(self, request: Request) -> Response:
        """``POST /v1/lists`` ``{"name"}``."""
        body = await json_body(request)
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            return _error(400, "invalid_request", "name is required")
        created = self.create_list(name)
        return JSONResponse({"id": created.id, "name": created.name}, status_code=201)

    async def add(self, request: Request) -> Response:
        """``POST /v1/lists/{id}/members``: at most 100 members, refused ones listed."""
        body = await json_body(request)
        members = body.get("members") if isinstance(body, dict) else None
        if not isinstance(members, list) or not all(
            isinstance(m, dict) and isinstance(m.get("email"), str) for m in members
        ):
            return _error(400, "invalid_request", "members must be a list of {email, properties}")
        if len(members) > MAX_MEMBERS:
            return _error(400, "invalid_request", f"at most {MAX_MEMBERS} members a call")
        refused: list[dict[str, Any]] = []
        with self.lock:
            target = self.lists.get(request.path_params["list_id"])
            if target is None:
                return _error(404, "list_not_found", "No such list")
            self.received += len(members)
            for member in members:
                if self.rejected(member["email"]):
                    refused.append({"email": member["email"], "reason": "address bounced"})
                else:
                    target.members[member["email"]] = dict(member.get("properties") or {})
        return JSONResponse({"added": len(members) - len(refused), "refused": refused})

    async def remove(self, request: Request) -> Response:
        """``POST /v1/lists/{id}/members/remove`` ``{"emails"}``."""
        body = await json_body(request)
        emails = body.get("emails") if isinstance(body, dict) else None
        if not isinstance(emails, list) or len(emails) > MAX_MEMBERS:
            return _error(400, "invalid_request", f"emails must be a list of at most {MAX_MEMBERS}")
        with self.lock:
            target = self.lists.get(request.path_params["list_id"])
            if target is None:
                return _error(404, "list_not_found", "No such list")
            self.received += len(emails)
            for email in emails:
                target.members.pop(str(email), None)
        return JSONResponse({"removed": len(emails)})


def create_app(state: PostboxSandbox) -> Starlette:
    """The emulator's ASGI app."""
    return Starlette(
        routes=[
            partner_route(state, "/v1/me", "GET", state.me),
            partner_route(state, "/v1/lists", "GET", state.find),
            partner_route(state, "/v1/lists", "POST", state.create),
            partner_route(state, "/v1/lists/{list_id}", "GET", state.get),
            partner_route(state, "/v1/lists/{list_id}/members", "POST", state.add),
            partner_route(state, "/v1/lists/{list_id}/members/remove", "POST", state.remove),
            *control_routes(state),
        ]
    )
