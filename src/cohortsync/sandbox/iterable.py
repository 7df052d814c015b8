"""An emulator of Iterable's list API (the contract in ``cohortsync.destinations.iterable``)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from cohortsync.credentials import new_secret
from cohortsync.sandbox.faults import SandboxState, control_routes, json_body, partner_route

MAX_SUBSCRIBERS = 1000
MAX_BODY_BYTES = 4 * 1024 * 1024
PROJECT_ID = 9079
CREATED_AT = 1_764_000_000_000


def _error(status: int, code: str, msg: str, params: Any = None) -> JSONResponse:
    return JSONResponse({"msg": msg, "code": code, "params": params}, status_code=status)


class IterableSandbox(SandboxState):
    """One Iterable project with one valid API key."""

    def __init__(self, api_key: str | None = None) -> None:
        super().__init__("iterable", {"api_key": api_key or new_secret()})

    def rate_limit_reply(self) -> Response:
        """Iterable's 429 body."""
        return _error(
            429, "RateLimitExceeded", f"Exceeded rate limit for project: {PROJECT_ID} ", {}
        )

    def refuse(self, request: Request) -> Response | None:
        """401 ``BadApiKey`` unless the ``Api-Key`` (or ``Api_Key``) header is right."""
        key = request.headers.get("api-key") or request.headers.get("api_key")
        if not self.accepts("api_key", key):
            params = {"ip": "127.0.0.1", "endpoint": request.url.path}
            return _error(401, "BadApiKey", "Invalid API key", params)
        return None

    async def get_lists(self, request: Request) -> Response:
        """``GET /api/lists``."""
        with self.lock:
            lists = [
                {"id": int(x.id), "name": x.name, "createdAt": CREATED_AT, "listType": "Standard"}
                for x in self.lists.values()
            ]
        return JSONResponse({"lists": lists})

    async def create(self, request: Request) -> Response:
        """``POST /api/lists``."""
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return _error(400, "BadParams", "name is required")
        return JSONResponse({"listId": int(self.create_list(body["name"]).id)})

    async def change(self, request: Request, subscribe: bool) -> Response:
        """``POST /api/lists/subscribe`` and ``/unsubscribe``."""
        if len(await request.body()) > MAX_BODY_BYTES:
            return _error(400, "BatchTooLarge", "Request body too large")
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("subscribers"), list):
            return _error(400, "BadJsonBody", "listId and subscribers are required")
        if len(body["subscribers"]) > MAX_SUBSCRIBERS:
            return _error(400, "BatchTooLarge", f"At most {MAX_SUBSCRIBERS} subscribers")
        with self.lock:
            target = self.lists.get(str(body.get("listId")))
        if target is None:
            params = {"projectId": PROJECT_ID, "listId": body.get("listId")}
            return _error(
                400, "Success", f"error.lists.invalidListId({body.get('listId')})", params
            )
        failed: dict[str, list[str]] = {"invalidEmails": [], "invalidUserIds": []}
        for entry in body["subscribers"]:
            user_id, email = entry.get("userId"), entry.get("email")
            key = str(user_id or email)
            if user_id is None and (not isinstance(email, str) or "@" not in email):
                failed["invalidEmails"].append(key)
            elif self.rejected(key):
                failed["invalidUserIds" if user_id else "invalidEmails"].append(key)
            else:
                with self.lock:
                    if subscribe:
                        target.members[key] = dict(entry.get("dataFields") or {})
                    else:
                        target.members.pop(key, None)
        fail_count = sum(len(v) for v in failed.values())
        return JSONResponse(
            {
                "successCount": len(body["subscribers"]) - fail_count,
                "failCount": fail_count,
                **failed,
                "createdFields": [],
                "filteredOutFields": [],
                "failedUpdates": failed,
            }
        )

    async def get_users(self, request: Request) -> Response:
        """``GET /api/lists/getUsers``: one id a line."""
        with self.lock:
            target = self.lists.get(request.query_params.get("listId", ""))
            keys = sorted(target.members) if target else None
        if keys is None:
            return _error(400, "BadParams", "Invalid listId")
        return PlainTextResponse("".join(f"{k}\n" for k in keys))


def create_app(state: IterableSandbox) -> Starlette:
    """The emulator's ASGI app."""

    async def subscribe(request: Request) -> Response:
        return await state.change(request, subscribe=True)

    async def unsubscribe(request: Request) -> Response:
        return await state.change(request, subscribe=False)

    return Starlette(
        routes=[
            partner_route(state, "/api/lists", "GET", state.get_lists),
            partner_route(state, "/api/lists", "POST", state.create),
            partner_route(state, "/api/lists/subscribe", "POST", subscribe),
            partner_route(state, "/api/lists/unsubscribe", "POST", unsubscribe),
            partner_route(state, "/api/lists/getUsers", "GET", state.get_users),
            *control_routes(state),
        ]
    )
