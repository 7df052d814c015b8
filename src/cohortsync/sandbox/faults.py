"""What every partner emulator shares: fault knobs, the lists it holds, and a control API.

Faults are set from Python (tests) or over HTTP (``POST /_sandbox/faults``); list membership is
read back with ``GET /_sandbox/lists``. The control paths start with ``/_sandbox`` so they can
never collide with a partner's own paths.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cohortsync.destinations.run_tag import RUN_HEADER

CONTROL_PREFIX = "/_sandbox"


@dataclass
class Faults:
    """Misbehaviour to inject; counters count down as requests consume them."""

    rate_limit_next: int = 0  # answer this many requests with 429
    retry_after: str | None = None  # the Retry-After header of those 429s (None: no header)
    server_error_next: int = 0  # answer this many requests with 503
    latency_seconds: float = 0.0  # delay before answering
    slow_next: int = 0  # answer this many requests only after slow_seconds (client timeouts)
    slow_seconds: float = 2.0
    reject_keys: set[str] = field(default_factory=set)  # members the partner refuses
    max_concurrency: int | None = None  # over this many requests in flight: 429
    free_plan: bool = False  # CleverTap: the account may not take cohort updates
    bad_credentials: bool = False  # refuse every credential, as after a revoked key


@dataclass(frozen=True)
class Call:
    """One request as the emulator saw it: when it came and went (monotonic seconds), what it
    asked for, and the sync run that sent it (None: not a sync run's)."""

    start: float
    end: float
    method: str
    path: str
    status: int
    run: str | None


@dataclass
class PartnerList:
    """A list held by the emulated partner."""

    id: str
    name: str
    members: dict[str, dict[str, Any]] = field(default_factory=dict)


class SandboxState:
    """The emulated partner account: valid credentials, lists, faults and request records."""

    def __init__(self, partner: str, credentials: dict[str, str]) -> None:
        self.partner = partner
        self.credentials = dict(credentials)
        self.faults = Faults()
        self.lists: dict[str, PartnerList] = {}
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []  # (method, path) of every partner request
        # (monotonic arrival time, injected fault or "") of every partner request
        self.timeline: list[tuple[float, str]] = []
        self.received = 0  # member entries received by calls that change a list (re-sends show)
        self.in_flight = 0
        self.peak_in_flight = 0
        self.calls: list[Call] = []  # every request, as it came and went
        self._next_id = 1000

    def new_id(self) -> str:
        """A fresh id for a created object."""
        with self.lock:
            self._next_id += 1
            return str(self._next_id)

    def list_named(self, name: str) -> PartnerList | None:
        """The list with ``name``, if any."""
        with self.lock:
            return next((lst for lst in self.lists.values() if lst.name == name), None)

    def create_list(self, name: str) -> PartnerList:
        """A new empty list."""
        created = PartnerList(self.new_id(), name)
        with self.lock:
            self.lists[created.id] = created
        return created

    def members(self, name: str) -> set[str]:
        """The member keys of the list named ``name`` (empty if there is no such list)."""
        found = self.list_named(name)
        with self.lock:
            return set(found.members) if found else set()

    def delete_list(self, list_id: str) -> bool:
        """The partner's own user deletes a list (False: no such list)."""
        with self.lock:
            return self.lists.pop(list_id, None) is not None

    def edit_by_hand(
        self,
        list_id: str,
        *,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
        rename: str | None = None,
    ) -> None:
        """The partner's own user edits a list in their dashboard: members put on or taken
        off, or the list renamed."""
        with self.lock:
            target = self.lists[list_id]
            for key in add:
                target.members.setdefault(key, {})
            for key in remove:
                target.members.pop(key, None)
            if rename is not None:
                target.name = rename

    def reset(self) -> None:
        """Forget lists, faults and records (credentials stay)."""
        with self.lock:
            self.faults = Faults()
            self.lists.clear()
            self.requests.clear()
            self.timeline.clear()
            self.received = 0
            self.peak_in_flight = 0
            self.calls.clear()

    def rejected(self, key: str) -> bool:
        """Whether the partner refuses this member."""
        return key in self.faults.reject_keys

    async def admit(self, request: Request) -> Response | None:
        """Apply latency and injected failures; a response here is returned instead of the
        partner's normal answer."""
        delay = 0.0
        with self.lock:
            self.requests.append((request.method, request.url.path))
            arrived = time.monotonic()
            faults = self.faults
            if faults.rate_limit_next > 0:
                faults.rate_limit_next -= 1
                self.timeline.append((arrived, "429"))
                headers = {"Retry-After": faults.retry_after} if faults.retry_after else {}
                return self.too_many(headers)
            if faults.server_error_next > 0:
                faults.server_error_next -= 1
                self.timeline.append((arrived, "503"))
                return JSONResponse({"error": "service unavailable"}, status_code=503)
            delay = faults.latency_seconds
            if faults.slow_next > 0:
                faults.slow_next -= 1
                delay = max(delay, faults.slow_seconds)
            self.timeline.append((arrived, "slow" if delay else ""))
        if delay:
            await asyncio.sleep(delay)
        return None

    def accepts(self, name: str, given: object) -> bool:
        """Whether ``given`` is the account's credential ``name`` (never, with bad_credentials)."""
        return not self.faults.bad_credentials and given == self.credentials.get(name)

    def refuse(self, request: Request) -> Response | None:
        """The partner's answer to wrong or missing credentials (None: they are right)."""
        return None

    def rate_limit_reply(self) -> Response:
        """The partner's 429 (emulators override to use the partner's body)."""
        return JSONResponse({"error": "too many requests"}, status_code=429)

    def too_many(self, headers: dict[str, str]) -> Response:
        """The partner's 429 with ``headers`` (a Retry-After, when the fault says so)."""
        response = self.rate_limit_reply()
        response.headers.update(headers)
        return response

    def enter(self) -> bool:
        """Count a request in flight; False when that exceeds the concurrency cap."""
        with self.lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            cap = self.faults.max_concurrency
            return cap is None or self.in_flight <= cap

    def leave(self) -> None:
        """A request finished."""
        with self.lock:
            self.in_flight -= 1


Handler = Callable[[Request], Awaitable[Response]]


def partner_route(state: SandboxState, path: str, method: str, handler: Handler) -> Route:
    """A partner endpoint behind the concurrency cap, the fault knobs and the credential
    check, in that order."""

    async def endpoint(request: Request) -> Response:
        started = time.monotonic()
        within_cap = state.enter()
        status = 500
        try:
            if not within_cap:
                response = state.too_many({})
            else:
                early = await state.admit(request) or state.refuse(request)
                response = early if early is not None else await handler(request)
            status = response.status_code
            return response
        except ClientDisconnect:  # the client went away mid-request (a killed worker)
            status = 499
            return Response(status_code=499)
        finally:
            state.leave()
            call = Call(
                started,
                time.monotonic(),
                request.method,
                request.url.path,
                status,
                request.headers.get(RUN_HEADER),
            )
            with state.lock:
                state.calls.append(call)

    return Route(path, endpoint, methods=[method])


def control_routes(state: SandboxState) -> list[Route]:
    """``/_sandbox/faults`` (POST: set knobs), ``/_sandbox/lists`` (GET: membership),
    ``/_sandbox/lists/{id}`` (POST: a hand edit on the partner's side), ``/_sandbox/reset``
    (POST)."""

    async def set_faults(request: Request) -> Response:
        body = await request.json()
        with state.lock:
            for key, value in body.items():
                if not hasattr(state.faults, key):
                    return JSONResponse({"error": f"unknown fault {key!r}"}, status_code=400)
                setattr(state.faults, key, set(value) if key == "reject_keys" else value)
        return JSONResponse({"ok": True})

    async def lists(_request: Request) -> Response:
        with state.lock:
            body = {
                lst.name: {"id": lst.id, "members": sorted(lst.members)}
                for lst in state.lists.values()
            }
        return JSONResponse(body)

    async def reset(_request: Request) -> Response:
        state.reset()
        return JSONResponse({"ok": True})

    async def edit(request: Request) -> Response:
        """``POST /_sandbox/lists/{id}`` ``{"add"?, "remove"?, "rename"?}`` or ``{"delete": true}``:
        what the partner's own user does by hand in their dashboard."""
        list_id = request.path_params["list_id"]
        body = await json_body(request)
        if not isinstance(body, dict):
            return JSONResponse({"error": "a JSON object is required"}, status_code=400)
        if body.get("delete"):
            found = state.delete_list(list_id)
        else:
            found = list_id in state.lists
            if found:
                state.edit_by_hand(
                    list_id,
                    add=[str(k) for k in body.get("add") or []],
                    remove=[str(k) for k in body.get("remove") or []],
                    rename=body.get("rename"),
                )
        if not found:
            return JSONResponse({"error": f"no list {list_id}"}, status_code=404)
        return JSONResponse({"ok": True})

    return [
        Route(f"{CONTROL_PREFIX}/faults", set_faults, methods=["POST"]),
        Route(f"{CONTROL_PREFIX}/lists", lists, methods=["GET"]),
        Route(f"{CONTROL_PREFIX}/reset", reset, methods=["POST"]),
        Route(f"{CONTROL_PREFIX}/lists/{{list_id}}", edit, methods=["POST"]),
    ]


async def json_body(request: Request) -> Any:
    """The request's JSON body, or None when it is not JSON."""
    try:
        return await request.json()
    except ValueError:
        return None
