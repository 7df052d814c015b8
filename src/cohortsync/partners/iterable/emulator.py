"""An emulator of one Iterable project's list API, modelled on Iterable's documented rules
(shared/PARTNER_FACTS.md, "Iterable"), not on how our connector happens to call it.

- Users are identified by a top-level ``email``, else ``userId``; a value inside ``dataFields``
  (``$email``) identifies nobody. The project is email-based: users are kept by email, with an
  index of their userIds.
- Subscribe with ``email``: the user is found or created (``updateExistingUsersOnly`` aside);
  a ``userId`` sent beside it overwrites the stored one (another user's userId is a conflict).
  ``userId`` alone: the user with that userId; none and ``preferUserId: true``: a new
  placeholder user ``<userId>@placeholder.email``; none otherwise: ``notFoundUserIds``.
  Replies are HTTP 200 with ``successCount``, ``failCount`` and ``failedUpdates``.
- List membership is by user and keyed here by the user's email (``/_sandbox/lists`` shows
  placeholder emails too: that is how a duplicate shows). ``channelUnsubscribe: true`` is
  recorded in ``channel_unsubscribes``.
- ``getUsers`` and ``/size`` share a budget of 5 calls a minute per project (429
  ``RateLimitExceeded`` beyond, no ``Retry-After``: its presence is unconfirmed), on the
  injectable ``clock``; ``reads`` and ``reads_refused`` count them; ``reads_per_minute = None``
  switches the limit off.
- ``DELETE /api/lists/{id}`` answers 409 "List is in use" for ids in ``lists_in_use``.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from cohortsync.credentials import new_secret
from cohortsync.sandbox.faults import (
    PartnerList,
    SandboxState,
    control_routes,
    json_body,
    partner_route,
)

MAX_SUBSCRIBERS = 1000
MAX_BODY_BYTES = 4 * 1024 * 1024
PROJECT_ID = 9079
CREATED_AT = 1_764_000_000_000
READS_PER_MINUTE = 5
PLACEHOLDER_DOMAIN = "placeholder.email"
FAILURE_LISTS = (
    "invalidEmails",
    "invalidUserIds",
    "notFoundEmails",
    "notFoundUserIds",
    "forgottenEmails",
    "forgottenUserIds",
    "conflictEmails",
    "conflictUserIds",
    "invalidDataEmails",
    "invalidDataUserIds",
)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LINES_PER_CHUNK = 10_000


def _error(status: int, code: str, msg: str, params: Any = None) -> JSONResponse:
    return JSONResponse({"msg": msg, "code": code, "params": params}, status_code=status)


def _invalid_list(list_id: Any) -> JSONResponse:
    params = {"projectId": PROJECT_ID, "listId": list_id}
    return _error(400, "Success", f"error.lists.invalidListId({list_id})", params)


@dataclass
class IterableUser:
    """A user profile of the project."""

    email: str
    user_id: str | None = None
    data_fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tally:
    """The per-user results of one subscribe or unsubscribe call."""

    sent: int
    failed: dict[str, list[str]] = field(default_factory=lambda: {n: [] for n in FAILURE_LISTS})
    unidentified: int = 0  # subscribers with neither email nor userId

    def fail(self, reason: str, value: str) -> None:
        """One user failed, listed under ``reason``."""
        self.failed[reason].append(value)

    def reply(self) -> JSONResponse:
        """Iterable's 200 reply: counts, ``failedUpdates`` and the deprecated lists."""
        fail_count = sum(len(v) for v in self.failed.values()) + self.unidentified
        return JSONResponse(
            {
                "successCount": self.sent - fail_count,
                "failCount": fail_count,
                "createdFields": [],
                "filteredOutFields": [],
                "failedUpdates": self.failed,
                "invalidEmails": self.failed["invalidEmails"],
                "invalidUserIds": self.failed["invalidUserIds"],
            }
        )


class IterableSandbox(SandboxState):
    """One email-based Iterable project with one valid API key."""

    def __init__(
        self, api_key: str | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__("iterable", {"api_key": api_key or new_secret()})
        self.clock = clock  # the read budget's time (tests drive it)
        self.users: dict[str, IterableUser] = {}  # by email
        self.user_ids: dict[str, str] = {}  # userId -> email
        self.descriptions: dict[str, str] = {}  # list id -> description
        self.lists_in_use: set[str] = set()  # list ids a campaign uses: DELETE answers 409
        self.channel_unsubscribes: list[str] = []  # users unsubscribed from the channel
        self.reads_per_minute: int | None = READS_PER_MINUTE  # None: no read budget
        self.reads = 0  # getUsers and size calls answered
        self.reads_refused = 0  # of those, answered 429
        self._read_times: deque[float] = deque()

    def reset(self) -> None:
        """Forget users, lists, knobs and records as well (credentials and clock stay)."""
        super().reset()
        with self.lock:
            self.users.clear()
            self.user_ids.clear()
            self.descriptions.clear()
            self.lists_in_use.clear()
            self.channel_unsubscribes.clear()
            self.reads_per_minute = READS_PER_MINUTE
            self.reads = self.reads_refused = 0
            self._read_times.clear()

    def edit_by_hand(
        self,
        list_id: str,
        *,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
        rename: str | None = None,
    ) -> None:
        """A hand edit in Iterable's dashboard: the users put on the list exist afterwards."""
        added = list(add)
        super().edit_by_hand(list_id, add=added, remove=remove, rename=rename)
        with self.lock:
            for email in added:
                self.users.setdefault(email, IterableUser(email))

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

    # -- users --------------------------------------------------------------------------------

    def _user_id_of(self, email: str) -> str | None:
        user = self.users.get(email)
        return user.user_id if user else None

    def _set_user_id(self, user: IterableUser, user_id: str) -> None:
        if user.user_id is not None:
            self.user_ids.pop(user.user_id, None)
        user.user_id = user_id
        self.user_ids[user_id] = user.email

    def _subscriber(self, entry: dict[str, Any], create: bool, tally: Tally) -> str | None:
        """The email of the user a subscribe entry stands for (found, created or updated),
        or None with the failure tallied. Caller holds the lock."""
        email, user_id = entry.get("email"), entry.get("userId")
        given = entry.get("dataFields")
        data: dict[str, Any] = given if isinstance(given, dict) else {}
        if email is not None:
            if not isinstance(email, str) or not EMAIL.match(email) or self.rejected(email):
                tally.fail("invalidEmails", str(email))
                return None
            if user_id is not None and self.rejected(str(user_id)):
                tally.fail("invalidUserIds", str(user_id))
                return None
            user = self.users.get(email)
            if user is None and not create:
                tally.fail("notFoundEmails", email)
                return None
            holder = self.user_ids.get(str(user_id)) if user_id is not None else None
            if holder is not None and holder != email:
                tally.fail("conflictUserIds", str(user_id))
                return None
            if user is None:
                user = self.users[email] = IterableUser(email)
            if user_id is not None:  # email wins: the stored userId becomes the one sent
                self._set_user_id(user, str(user_id))
            user.data_fields.update(data)
            return email
        if user_id is not None:
            key = str(user_id)
            if not key.strip() or self.rejected(key):
                tally.fail("invalidUserIds", key)
                return None
            found = self.user_ids.get(key)
            if found is not None:
                self.users[found].data_fields.update(data)
                return found
            if entry.get("preferUserId") is True and create:
                placeholder = IterableUser(f"{key}@{PLACEHOLDER_DOMAIN}", data_fields=dict(data))
                self.users[placeholder.email] = placeholder
                self._set_user_id(placeholder, key)
                return placeholder.email
            tally.fail("notFoundUserIds", key)
            return None
        tally.unidentified += 1
        return None

    def _unsubscriber(self, entry: dict[str, Any], tally: Tally) -> str | None:
        """The email of the existing user an unsubscribe entry names, or None with the
        failure tallied. Caller holds the lock."""
        email, user_id = entry.get("email"), entry.get("userId")
        if email is not None:
            if not isinstance(email, str) or not EMAIL.match(email) or self.rejected(email):
                tally.fail("invalidEmails", str(email))
            elif email not in self.users:
                tally.fail("notFoundEmails", email)
            else:
                return email
            return None
        if user_id is not None:
            key = str(user_id)
            if self.rejected(key):
                tally.fail("invalidUserIds", key)
            elif key not in self.user_ids:
                tally.fail("notFoundUserIds", key)
            else:
                return self.user_ids[key]
            return None
        tally.unidentified += 1
        return None

    # -- endpoints ----------------------------------------------------------------------------

    async def get_lists(self, request: Request) -> Response:
        """``GET /api/lists``."""
        with self.lock:
            lists = [
                {
                    "id": int(x.id),
                    "name": x.name,
                    "description": self.descriptions.get(x.id, ""),
                    "createdAt": CREATED_AT,
                    "listType": "Standard",
                }
                for x in self.lists.values()
            ]
        return JSONResponse({"lists": lists})

    async def create(self, request: Request) -> Response:
        """``POST /api/lists`` ``{name, description?}``: names may repeat, ids never do."""
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return _error(400, "BadParams", "name is required")
        created = self.create_list(body["name"])
        with self.lock:
            self.descriptions[created.id] = str(body.get("description") or "")
        return JSONResponse({"listId": int(created.id)})

    async def delete(self, request: Request) -> Response:
        """``DELETE /api/lists/{listId}``: 409 while a campaign uses the list."""
        list_id = request.path_params["list_id"]
        with self.lock:
            in_use = list_id in self.lists_in_use
        if in_use:
            return _error(409, "Conflict", "List is in use")
        if not self.delete_list(list_id):
            return _invalid_list(list_id)
        return JSONResponse({"msg": f"Deleted list {list_id}", "code": "Success", "params": None})

    async def _change_request(
        self, request: Request
    ) -> tuple[PartnerList, list[dict[str, Any]], dict[str, Any]] | Response:
        """The list, the subscriber entries and the body of a subscribe/unsubscribe call, or
        Iterable's 400 when the call itself is wrong."""
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
            return _invalid_list(body.get("listId"))
        entries = [e if isinstance(e, dict) else {} for e in body["subscribers"]]
        return target, entries, body

    async def subscribe(self, request: Request) -> Response:
        """``POST /api/lists/subscribe``."""
        checked = await self._change_request(request)
        if isinstance(checked, Response):
            return checked
        target, entries, body = checked
        create = body.get("updateExistingUsersOnly") is not True
        tally = Tally(len(entries))
        with self.lock:
            self.received += len(entries)
            for entry in entries:
                email = self._subscriber(entry, create, tally)
                if email is not None:
                    target.members[email] = {}
        return tally.reply()

    async def unsubscribe(self, request: Request) -> Response:
        """``POST /api/lists/unsubscribe``; ``channelUnsubscribe: true`` is recorded."""
        checked = await self._change_request(request)
        if isinstance(checked, Response):
            return checked
        target, entries, body = checked
        channel = body.get("channelUnsubscribe") is True
        tally = Tally(len(entries))
        with self.lock:
            self.received += len(entries)
            for entry in entries:
                email = self._unsubscriber(entry, tally)
                if email is not None:
                    target.members.pop(email, None)
                    if channel:
                        self.channel_unsubscribes.append(email)
        return tally.reply()

    def _read_refused(self) -> bool:
        """Count a getUsers/size call against the project's 5 a minute; True beyond it."""
        with self.lock:
            self.reads += 1
            if self.reads_per_minute is None:
                return False
            now = self.clock()
            while self._read_times and now - self._read_times[0] >= 60.0:
                self._read_times.popleft()
            if len(self._read_times) >= self.reads_per_minute:
                self.reads_refused += 1
                return True
            self._read_times.append(now)
            return False

    async def get_users(self, request: Request) -> Response:
        """``GET /api/lists/getUsers?listId=&preferUserId=``: one email (or userId) a line."""
        if self._read_refused():
            return self.rate_limit_reply()
        prefer_user_id = request.query_params.get("preferUserId", "").lower() == "true"
        with self.lock:
            target = self.lists.get(request.query_params.get("listId", ""))
            if target is None:
                return _error(400, "BadParams", "Invalid listId")
            lines = [
                (self._user_id_of(email) if prefer_user_id else None) or email
                for email in sorted(target.members)
            ]
        return StreamingResponse(_chunks(lines), media_type="text/plain")

    async def size(self, request: Request) -> Response:
        """``GET /api/lists/{listId}/size``: the count as plain text."""
        if self._read_refused():
            return self.rate_limit_reply()
        with self.lock:
            target = self.lists.get(request.path_params["list_id"])
            count = len(target.members) if target else None
        if count is None:
            return _invalid_list(request.path_params["list_id"])
        return PlainTextResponse(str(count))


def _chunks(lines: list[str]) -> Iterator[str]:
    for start in range(0, len(lines), LINES_PER_CHUNK):
        yield "".join(f"{line}\n" for line in lines[start : start + LINES_PER_CHUNK])


def create_app(state: IterableSandbox) -> Starlette:
    """The emulator's ASGI app."""
    return Starlette(
        routes=[
            partner_route(state, "/api/lists", "GET", state.get_lists),
            partner_route(state, "/api/lists", "POST", state.create),
            partner_route(state, "/api/lists/subscribe", "POST", state.subscribe),
            partner_route(state, "/api/lists/unsubscribe", "POST", state.unsubscribe),
            partner_route(state, "/api/lists/getUsers", "GET", state.get_users),
            partner_route(state, "/api/lists/{list_id}/size", "GET", state.size),
            partner_route(state, "/api/lists/{list_id}", "DELETE", state.delete),
            *control_routes(state),
        ]
    )
