"""An emulator of CleverTap's profile upload and segment APIs (the contract, documented and
inferred parts alike, is in ``cohortsync.destinations.clevertap``)."""

from __future__ import annotations

from typing import Any

import orjson
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

MAX_RECORDS = 1000
CONCURRENCY = 15
FREE_PLAN_MESSAGE = "App may not submit cohort updates from Mixpanel"


def _fail(status: int, error: str) -> JSONResponse:
    return JSONResponse({"status": "fail", "error": error, "code": status}, status_code=status)


def _skipped(code: int, error: str, number: int, record: Any) -> dict[str, Any]:
    return {
        "status": "fail",
        "code": code,
        "error": f"{error} Skipped record number : {number}",
        "record": orjson.dumps(record).decode(),
    }


class CleverTapSandbox(SandboxState):
    """One CleverTap account: profiles by identity, segments by customer_segment_id."""

    def __init__(self, account_id: str = "SBX-000-000-0001", passcode: str | None = None) -> None:
        super().__init__(
            "clevertap", {"account_id": account_id, "passcode": passcode or new_secret()}
        )
        self.faults.max_concurrency = CONCURRENCY
        self.profiles: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        """Forget everything but the credentials; the documented concurrency cap stays."""
        super().reset()
        self.faults.max_concurrency = CONCURRENCY
        with self.lock:
            self.profiles.clear()

    def rate_limit_reply(self) -> Response:
        """429 "Too many concurrent requests"."""
        return _fail(429, "Too many concurrent requests")

    def refuse(self, request: Request) -> Response | None:
        """401 for a wrong account id or passcode."""
        account = request.headers.get("x-clevertap-account-id")
        passcode = request.headers.get("x-clevertap-passcode")
        if not self.accepts("account_id", account):
            return _fail(401, "Account ID is not valid")
        if not self.accepts("passcode", passcode):
            return _fail(401, "Passcode is not valid")
        return None

    async def connect(self, request: Request) -> Response:
        """``GET /v1/connect?partner=``."""
        if not request.query_params.get("partner"):
            return _fail(400, "partner is required")
        return JSONResponse({"status": "success"})

    async def upload(self, request: Request) -> Response:
        """``POST /1/upload``: profiles; per-record failures in ``unprocessed``."""
        body = await json_body(request)
        records = body.get("d") if isinstance(body, dict) else None
        if not isinstance(records, list):
            return _fail(400, "Some mandatory parameter was missing: d")
        if len(records) > MAX_RECORDS:
            return _fail(400, f"At most {MAX_RECORDS} records can be sent per call")
        failed = []
        for number, record in enumerate(records, start=1):
            identity = record.get("identity") if isinstance(record, dict) else None
            if identity is None or str(identity) == "" or len(str(identity)) > 120:
                message = (
                    "'identity' or 'fbId' or 'gpId' or 'objectId' is necessary under 120 chars "
                    "to identify the user."
                )
                failed.append(_skipped(523, message, number, record))
            elif self.rejected(str(identity)):
                message = "Profile data is incorrect. Email is not valid."
                failed.append(_skipped(515, message, number, record))
            else:
                with self.lock:
                    profile = self.profiles.setdefault(str(identity), {})
                    profile.update(record.get("profileData") or {})
        return JSONResponse(
            {"status": "success", "processed": len(records) - len(failed), "unprocessed": failed}
        )

    async def create_segment(self, request: Request) -> Response:
        """``POST /api/createSegment``: 409 when the customer_segment_id exists."""
        if self.faults.free_plan:
            return _fail(403, FREE_PLAN_MESSAGE)
        body = await json_body(request)
        segments = body.get("segments") if isinstance(body, dict) else None
        if not isinstance(segments, list) or not segments:
            return _fail(400, "segments is required")
        for segment in segments:
            key = str(segment.get("customer_segment_id"))
            with self.lock:
                if key in self.lists:
                    return _fail(409, f"Segment {key} already exists")
                self.lists[key] = PartnerList(key, str(segment.get("segment_name")))
        return JSONResponse({"status": "success"})

    async def update_segment(self, request: Request) -> Response:
        """``POST /api/updateSegment``: add or remove identities."""
        if self.faults.free_plan:
            return _fail(403, FREE_PLAN_MESSAGE)
        body = await json_body(request)
        bulk = body.get("bulk_profiles") if isinstance(body, dict) else None
        if not isinstance(bulk, list):
            return _fail(400, "bulk_profiles is required")
        processed, failed = 0, []
        for group in bulk:
            profiles = group.get("user_profiles") or []
            for segment in group.get("segments") or []:
                with self.lock:
                    target = self.lists.get(str(segment.get("customer_segment_id")))
                if target is None:
                    return _fail(404, "Segment not found")
                for number, entry in enumerate(profiles, start=1):
                    identity = str(entry.get("identity"))
                    if self.rejected(identity):
                        failed.append(_skipped(555, "Could not update segment.", number, entry))
                        continue
                    with self.lock:
                        if segment.get("action") == "remove":
                            target.members.pop(identity, None)
                        else:
                            target.members[identity] = {}
                    processed += 1
        return JSONResponse({"status": "success", "processed": processed, "unprocessed": failed})


def create_app(state: CleverTapSandbox) -> Starlette:
    """The emulator's ASGI app."""
    return Starlette(
        routes=[
            partner_route(state, "/v1/connect", "GET", state.connect),
            partner_route(state, "/1/upload", "POST", state.upload),
            partner_route(state, "/api/createSegment", "POST", state.create_segment),
            partner_route(state, "/api/updateSegment", "POST", state.update_segment),
            *control_routes(state),
        ]
    )
