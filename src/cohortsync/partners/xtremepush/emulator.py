"""An emulator of Xtremepush's External API for user lists (the contract, documented and
inferred parts alike, is in ``cohortsync.partners.xtremepush.destination``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cohortsync.credentials import new_secret
from cohortsync.sandbox.faults import (
    Handler,
    PartnerList,
    SandboxState,
    control_routes,
    json_body,
    partner_route,
)

MAX_ITEMS = 10_000
BodyHandler = Callable[[dict[str, Any]], Awaitable[Response]]


def _reply(status: int, message: str | None = None, **fields: Any) -> JSONResponse:
    body: dict[str, Any] = {"code": status, "success": 200 <= status < 300, **fields}
    if message is not None:
        body["message"] = message
    return JSONResponse(body, status_code=status)


LIST_FIELDS = ("id", "title")
OPERATORS = ("=", "!=", "in")


def valid_condition(condition: Any) -> bool:
    """``[field, op, value]`` with a field a user list has and an operator ``list/list`` takes."""
    return (
        isinstance(condition, list)
        and len(condition) == 3
        and condition[0] in LIST_FIELDS
        and condition[1] in OPERATORS
        and (condition[1] != "in" or isinstance(condition[2], list))
    )


def meets(condition: list[Any], user_list: PartnerList) -> bool:
    """Whether ``user_list`` meets a valid condition (ids compare as text: 7 and "7" agree)."""
    field, operator, value = condition
    held = user_list.id if field == "id" else user_list.name
    if operator == "in":
        return held in {str(v) for v in value}
    equal = held == str(value)
    return equal if operator == "=" else not equal


class XtremepushSandbox(SandboxState):
    """One Xtremepush project with one app token. User lists are known by id and their titles
    may repeat (two cohorts of one name get a list each); ``known_users`` (None: everyone) are
    the user ids the project holds — others are refused, never created."""

    def __init__(self, app_token: str | None = None) -> None:
        super().__init__("xtremepush", {"app_token": app_token or new_secret()})
        self.known_users: set[str] | None = None

    def rate_limit_reply(self) -> Response:
        """Xtremepush's 429 envelope."""
        return _reply(429, "Too Many Requests", errors=["rate limit exceeded"])

    def authorised(self, handler: BodyHandler) -> Handler:
        """Read the JSON body and check its ``apptoken`` (400 without one, 401 for a wrong
        one) before ``handler`` sees the body."""

        async def endpoint(request: Request) -> Response:
            parsed = await json_body(request)
            body = parsed if isinstance(parsed, dict) else None
            if body is None or not body.get("apptoken"):
                message = "Requests without authentication are invalid"
                return _reply(400, message, errors=["apptoken"])
            if not self.accepts("app_token", body["apptoken"]):
                return _reply(401, "Authentication failed", errors=["invalid apptoken"])
            return await handler(body)

        return endpoint

    async def list_lists(self, body: dict[str, Any]) -> Response:
        """``list/list``: the user lists that meet every ``condition`` (``[field, op, value]``
        on ``id`` or ``title``; ops ``=``, ``!=``, ``in``), at most ``limit`` of them."""
        conditions = body.get("condition") or []
        if not isinstance(conditions, list) or not all(map(valid_condition, conditions)):
            message = "condition must be a list of [field, op, value] on id or title"
            return _reply(400, message, errors={"condition": ["invalid"]})
        with self.lock:
            data = [
                {"id": int(x.id), "title": x.name}
                for x in self.lists.values()
                if all(meets(condition, x) for condition in conditions)
            ]
        limit = body.get("limit")
        return _reply(200, data=data[: int(limit)] if isinstance(limit, int) else data)

    async def create_user_list(self, body: dict[str, Any]) -> Response:
        """``create/list`` with a ``title``."""
        if not isinstance(body.get("title"), str) or not body["title"]:
            return _reply(400, "title is required", errors={"title": ["required"]})
        created = self.create_list(body["title"])
        return _reply(200, model={"id": int(created.id), "title": created.name})

    async def items(self, body: dict[str, Any], adding: bool) -> Response:
        """``import/list`` and ``delete/list-item``: ``id`` (the list's) and ``items`` (user
        ids); a list id the project does not hold is a 404 in the error envelope."""
        items = body.get("items")
        if not isinstance(items, list):
            return _reply(400, "items is required", errors={"items": ["required"]})
        if len(items) > MAX_ITEMS:
            return _reply(400, f"at most {MAX_ITEMS} records a request", errors=["items"])
        list_id = str(body.get("id"))
        errors = []
        with self.lock:
            target = self.lists.get(list_id)
            if target is None:
                return _reply(404, f"list {list_id} not found", errors={"id": ["not found"]})
            self.received += len(items)
            for item in map(str, items):
                unknown = self.known_users is not None and item not in self.known_users
                if adding and (unknown or self.rejected(item)):
                    errors.append({"item": item, "message": "user not found"})
                elif adding:
                    target.members[item] = {}
                else:
                    target.members.pop(item, None)
        return _reply(200, data={"processed": len(items) - len(errors)}, errors=errors)


def create_app(state: XtremepushSandbox) -> Starlette:
    """The emulator's ASGI app."""

    async def import_list(body: dict[str, Any]) -> Response:
        return await state.items(body, adding=True)

    async def delete_items(body: dict[str, Any]) -> Response:
        return await state.items(body, adding=False)

    def call(method_model: str, handler: BodyHandler) -> Route:
        return partner_route(
            state, f"/api/external/{method_model}", "POST", state.authorised(handler)
        )

    return Starlette(
        routes=[
            call("list/list", state.list_lists),
            call("create/list", state.create_user_list),
            call("import/list", import_list),
            call("delete/list-item", delete_items),
            *control_routes(state),
        ]
    )
