"""An emulator of Xtremepush's External API for user lists (the contract, documented and
inferred parts alike, is in ``cohortsync.destinations.xtremepush``)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cohortsync.credentials import new_secret
from cohortsync.sandbox.faults import SandboxState, control_routes, json_body, partner_route

MAX_ITEMS = 10_000


def _reply(status: int, message: str | None = None, **fields: Any) -> JSONResponse:
    body: dict[str, Any] = {"code": status, "success": 200 <= status < 300, **fields}
    if message is not None:
        body["message"] = message
    return JSONResponse(body, status_code=status)


class XtremepushSandbox(SandboxState):
    """One Xtremepush project with one app token; ``known_users`` (None: everyone) are the
    user ids the project holds — others are refused, never created."""

    def __init__(self, app_token: str | None = None) -> None:
        super().__init__("xtremepush", {"app_token": app_token or new_secret()})
        self.known_users: set[str] | None = None

    def too_many(self, headers: dict[str, str]) -> Response:
        """Xtremepush's 429 envelope."""
        response = _reply(429, "Too Many Requests", errors=["rate limit exceeded"])
        response.headers.update(headers)
        return response

    async def body(self, request: Request) -> dict[str, Any] | None:
        """The JSON body (read once per request)."""
        parsed = await json_body(request)
        return parsed if isinstance(parsed, dict) else None

    def token_error(self, body: dict[str, Any] | None) -> Response | None:
        """400 without a token, 401 with a wrong one."""
        if body is None or not body.get("apptoken"):
            return _reply(400, "Requests without authentication are invalid", errors=["apptoken"])
        if not self.accepts("app_token", body["apptoken"]):
            return _reply(401, "Authentication failed", errors=["invalid apptoken"])
        return None

    async def list_lists(self, request: Request) -> Response:
        """``list/list``: the user lists, filtered by ``condition`` on ``title``."""
        body = await self.body(request)
        refused = self.token_error(body)
        if refused or body is None:
            return refused or _reply(400, "bad body")
        wanted: str | None = None
        for condition in body.get("condition") or []:
            if isinstance(condition, list) and condition[:2] == ["title", "="]:
                wanted = str(condition[2])
        with self.lock:
            data = [
                {"id": int(x.id), "title": x.name}
                for x in self.lists.values()
                if wanted is None or x.name == wanted
            ]
        limit = body.get("limit")
        return _reply(200, data=data[: int(limit)] if isinstance(limit, int) else data)

    async def create_user_list(self, request: Request) -> Response:
        """``create/list`` with a ``title``."""
        body = await self.body(request)
        refused = self.token_error(body)
        if refused or body is None:
            return refused or _reply(400, "bad body")
        if not isinstance(body.get("title"), str) or not body["title"]:
            return _reply(400, "title is required", errors={"title": ["required"]})
        created = self.create_list(body["title"])
        return _reply(200, model={"id": int(created.id), "title": created.name})

    async def items(self, request: Request, adding: bool) -> Response:
        """``import/list`` and ``delete/list-item``: ``id`` and ``items`` (user ids)."""
        body = await self.body(request)
        refused = self.token_error(body)
        if refused or body is None:
            return refused or _reply(400, "bad body")
        items = body.get("items")
        if not isinstance(items, list):
            return _reply(400, "items is required", errors={"items": ["required"]})
        if len(items) > MAX_ITEMS:
            return _reply(400, f"at most {MAX_ITEMS} records a request", errors=["items"])
        with self.lock:
            target = self.lists.get(str(body.get("id")))
        if target is None:
            return _reply(404, "list not found", errors={"id": ["not found"]})
        errors = []
        for item in map(str, items):
            unknown = self.known_users is not None and item not in self.known_users
            if adding and (unknown or self.rejected(item)):
                errors.append({"item": item, "message": "user not found"})
                continue
            with self.lock:
                if adding:
                    target.members[item] = {}
                else:
                    target.members.pop(item, None)
        return _reply(200, data={"processed": len(items) - len(errors)}, errors=errors)


def create_app(state: XtremepushSandbox) -> Starlette:
    """The emulator's ASGI app."""

    async def import_list(request: Request) -> Response:
        return await state.items(request, adding=True)

    async def delete_items(request: Request) -> Response:
        return await state.items(request, adding=False)

    base = "/api/external"
    return Starlette(
        routes=[
            partner_route(state, f"{base}/list/list", "POST", state.list_lists),
            partner_route(state, f"{base}/create/list", "POST", state.create_user_list),
            partner_route(state, f"{base}/import/list", "POST", import_list),
            partner_route(state, f"{base}/delete/list-item", "POST", delete_items),
            *control_routes(state),
        ]
    )
