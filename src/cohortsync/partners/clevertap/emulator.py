"""An emulator of CleverTap's profile upload and Custom List API, modelled on what CleverTap
documents (developer.clevertap.com: Upload User Profiles, API Errors, Custom List API), not on
what our connector happens to send.

- ``POST /1/upload`` ``{"d": [{"type", "identity", "ts"?, "profileData"}]}``: at most 1,000
  records; an unknown identity creates a profile. Every reply to a well-formed call is HTTP 200
  ``{"status": "success"|"partial"|"fail", "processed", "unprocessed": [{"status", "code",
  "error": "… Skipped record number : N", "record"}]}``: a record breaking a documented rule
  (identity missing or over 120 characters, a key over 120 bytes, a value over 512 bytes, more
  than 256 custom keys, a ``ts`` that is not epoch seconds) fails on its own.
- The Custom List API in its three steps: ``POST /get_custom_list_segment_url`` (no body) →
  ``{"presignedS3URL", "expiry", "status"}`` valid 24 hours; ``PUT`` of the CSV to that URL, which
  behaves as S3 does (the URL's signature is the only credential; an unknown, altered or
  expired URL gets a 403 S3 XML error, a body without Content-Length a 411); ``POST
  /upload_custom_list_segment_completed`` ``{name, email, filename, creator, url, replace}`` →
  ``{"Segment ID": n, "status": "success"}``. The file's header row must be ``Type,Identity``
  and each row ``i,<identity>`` or ``g,<CleverTap ID>``. The segment is found by name (made when
  there is none); ``replace: true`` makes it exactly the file's users, ``replace: false`` adds
  them. Users with no profile are not members; they are counted in :attr:`unmatched`.

The emulator's own choices where the docs stop: the record codes for the key, value and key
count limits (522 and 555; CleverTap documents the limits, not their codes), ``expiry`` as an
ISO 8601 UTC time, the 400 texts of the completed call, and the free-plan refusal (403 with
CleverTap's error body) on the two Custom List calls. ``GET /v1/connect`` answers the
connector's credential check.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cohortsync.credentials import new_secret
from cohortsync.sandbox.faults import SandboxState, control_routes, json_body, partner_route

MAX_RECORDS = 1000
CONCURRENCY = 15
MAX_IDENTITY_CHARS = 120
MAX_KEY_BYTES = 120
MAX_VALUE_BYTES = 512
MAX_CUSTOM_KEYS = 256
URL_LIFETIME = timedelta(hours=24)
FREE_PLAN_MESSAGE = "App may not submit cohort updates from Mixpanel"
CUSTOM_LIST_HEADER = ["Type", "Identity"]
S3_PATH = "/_s3"
AMZ_DATE = "%Y%m%dT%H%M%SZ"
# Profile keys CleverTap defines itself; every other key of profileData is a custom key.
SYSTEM_KEYS = frozenset(
    {"Name", "Email", "Phone", "Gender", "DOB", "Photo", "Employed", "Education", "Married"}
    | {"Age", "Customer Type", "Identity", "MSG-email", "MSG-push", "MSG-sms", "MSG-whatsapp"}
)
COMPLETED_FIELDS = ("name", "email", "filename", "creator", "url")


def _fail(status: int, error: str) -> JSONResponse:
    return JSONResponse({"status": "fail", "error": error, "code": status}, status_code=status)


def _s3_error(status: int, code: str, message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


def _skipped(code: int, error: str, number: int, record: Any) -> dict[str, Any]:
    return {
        "status": "fail",
        "code": code,
        "error": f"{error} Skipped record number : {number}",
        "record": orjson.dumps(record).decode(),
    }


def record_problem(record: Any) -> tuple[int, str] | None:
    """Why CleverTap would skip one ``/1/upload`` record (code and text), or None."""
    if not isinstance(record, dict):
        return 512, "Invalid record structure."
    if record.get("type") not in ("profile", "event"):
        return 524, "Data neither event nor profile."
    identity = record.get("identity")
    if identity is None or str(identity) == "" or len(str(identity)) > MAX_IDENTITY_CHARS:
        return 523, (
            "'identity' or 'fbId' or 'gpId' or 'objectId' is necessary under 120 chars "
            "to identify the user."
        )
    ts = record.get("ts")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int)):
        return 525, "Timestamp not in UNIX epoch format."
    data = record.get("profileData") or {}
    if not isinstance(data, dict):
        return 512, "profileData must be an object."
    if sum(1 for key in data if key not in SYSTEM_KEYS) > MAX_CUSTOM_KEYS:
        return 522, f"Profile properties limit exceeded ({MAX_CUSTOM_KEYS} custom keys)."
    for key, value in data.items():
        if len(str(key).encode()) > MAX_KEY_BYTES:
            return 555, f"Key {str(key)[:20]!r}… is over {MAX_KEY_BYTES} bytes."
        if len(_text(value).encode()) > MAX_VALUE_BYTES:
            return 555, f"Value of {key!r} is over {MAX_VALUE_BYTES} bytes."
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def read_custom_list(content: bytes) -> list[tuple[str, str]]:
    """The ``(type, value)`` rows of a custom-list CSV; ValueError says what is wrong."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("The file is not UTF-8 text.") from None
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if not rows or [cell.strip() for cell in rows[0]] != CUSTOM_LIST_HEADER:
        found = ",".join(rows[0]) if rows else "nothing"
        raise ValueError(f"The file's header row must be Type,Identity (found {found[:60]!r}).")
    parsed = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or row[0] not in ("i", "g") or not row[1]:
            raise ValueError(f"Row {number} must be i,<identity> or g,<CleverTap ID>.")
        parsed.append((row[0], row[1]))
    return parsed


@dataclass(frozen=True)
class Presigned:
    """What a presigned URL names: the upload's token and the signed date and lifetime."""

    token: str
    date: str
    expires: str
    signature: str

    @classmethod
    def parse(cls, path: str, query: Mapping[str, str]) -> Presigned | None:
        """The parts of ``/_s3/<token>?X-Amz-…`` (None when it is not such a URL)."""
        prefix = f"{S3_PATH}/"
        if not path.startswith(prefix):
            return None
        return cls(
            token=path[len(prefix) :],
            date=query.get("X-Amz-Date", ""),
            expires=query.get("X-Amz-Expires", ""),
            signature=query.get("X-Amz-Signature", ""),
        )


class CleverTapSandbox(SandboxState):
    """One CleverTap account: profiles by identity, segments (the generic lists, keyed by
    identity) by name, and the custom-list files uploaded to its presigned URLs."""

    def __init__(self, account_id: str = "SBX-000-000-0001", passcode: str | None = None) -> None:
        super().__init__(
            "clevertap", {"account_id": account_id, "passcode": passcode or new_secret()}
        )
        self.faults.max_concurrency = CONCURRENCY
        self.profiles: dict[str, dict[str, Any]] = {}
        self.clevertap_ids: dict[str, str] = {}  # identity -> CleverTap ID (objectId)
        self.files: dict[str, bytes | None] = {}  # upload token -> the file PUT there
        self.unmatched: dict[str, int] = {}  # segment id -> rows of its last file with no user
        self.clock: Callable[[], float] = time.time  # tests move it to expire URLs
        self._signing_key = secrets.token_bytes(32)

    def reset(self) -> None:
        """Forget everything but the credentials; the documented concurrency cap stays."""
        super().reset()
        self.faults.max_concurrency = CONCURRENCY
        with self.lock:
            self.profiles.clear()
            self.clevertap_ids.clear()
            self.files.clear()
            self.unmatched.clear()
            self.clock = time.time

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
        """``POST /1/upload``: profiles upserted; failures per record inside a 200."""
        body = await json_body(request)
        records = body.get("d") if isinstance(body, dict) else None
        if not isinstance(records, list):
            return _fail(400, "Some mandatory parameter was missing: d")
        if len(records) > MAX_RECORDS:
            return _fail(400, f"At most {MAX_RECORDS} records can be sent per call")
        failed = []
        for number, record in enumerate(records, start=1):
            problem = record_problem(record)
            if problem is None and self.rejected(str(record["identity"])):
                problem = 515, "Profile data is incorrect. Email is not valid."
            if problem is not None:
                failed.append(_skipped(*problem, number, record))
            elif record["type"] == "profile":
                self._upsert(str(record["identity"]), record.get("profileData") or {})
        status = "success" if not failed else "fail" if len(failed) == len(records) else "partial"
        return JSONResponse(
            {"status": status, "processed": len(records) - len(failed), "unprocessed": failed}
        )

    def _upsert(self, identity: str, data: dict[str, Any]) -> None:
        with self.lock:
            self.profiles.setdefault(identity, {}).update(data)
            self.clevertap_ids.setdefault(identity, f"__{secrets.token_hex(16)}")

    def _sign(self, token: str, date: str, expires: str) -> str:
        message = f"{token}\n{date}\n{expires}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    async def custom_list_url(self, request: Request) -> Response:
        """``POST /get_custom_list_segment_url``: a presigned URL to PUT one file to."""
        if self.faults.free_plan:
            return _fail(403, FREE_PLAN_MESSAGE)
        token = secrets.token_urlsafe(18)
        issued = datetime.fromtimestamp(self.clock(), UTC)
        date, expires = issued.strftime(AMZ_DATE), str(int(URL_LIFETIME.total_seconds()))
        with self.lock:
            self.files[token] = None
        base = str(request.base_url).rstrip("/")
        url = (
            f"{base}{S3_PATH}/{token}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={date}"
            f"&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host"
            f"&X-Amz-Signature={self._sign(token, date, expires)}"
        )
        expiry = (issued + URL_LIFETIME).strftime("%Y-%m-%dT%H:%M:%SZ")
        return JSONResponse({"presignedS3URL": url, "expiry": expiry, "status": "success"})

    def _url_problem(self, presigned: Presigned, *, uploading: bool) -> tuple[str, str] | None:
        """S3's code and message refusing this URL (None: this account signed it and, for an
        upload, it has not expired)."""
        if presigned.token not in self.files:
            return "AccessDenied", "Access Denied"
        expected = self._sign(presigned.token, presigned.date, presigned.expires)
        if not hmac.compare_digest(expected, presigned.signature):
            return "SignatureDoesNotMatch", (
                "The request signature we calculated does not match the signature you provided."
            )
        issued = datetime.strptime(presigned.date, AMZ_DATE).replace(tzinfo=UTC)
        if uploading and self.clock() > issued.timestamp() + int(presigned.expires):
            return "AccessDenied", "Request has expired"
        return None

    async def put_file(self, request: Request) -> Response:
        """``PUT /_s3/<token>?X-Amz-…``: S3 stores the file; the URL is the only credential."""
        with self.lock:
            self.requests.append((request.method, request.url.path))
        presigned = Presigned.parse(request.url.path, request.query_params)
        if presigned is None:
            return _s3_error(403, "AccessDenied", "Access Denied")
        problem = self._url_problem(presigned, uploading=True)
        if problem is not None:
            return _s3_error(403, *problem)
        if "content-length" not in request.headers:
            return _s3_error(411, "MissingContentLength", "You must provide the Content-Length.")
        try:
            content = await request.body()
        except ClientDisconnect:  # the client went away mid-upload
            return Response(status_code=499)
        with self.lock:
            self.files[presigned.token] = content
        return Response(status_code=200)

    async def custom_list_completed(self, request: Request) -> Response:
        """``POST /upload_custom_list_segment_completed``: the file becomes the segment named
        ``name`` (``replace: true``) or is added to it."""
        if self.faults.free_plan:
            return _fail(403, FREE_PLAN_MESSAGE)
        body = await json_body(request)
        if not isinstance(body, dict):
            return _fail(400, "The body must be a JSON object")
        for field in COMPLETED_FIELDS:
            if not isinstance(body.get(field), str) or not body[field]:
                return _fail(400, f"Some mandatory parameter was missing: {field}")
        replace = body.get("replace", False)
        if not isinstance(replace, bool):
            return _fail(400, "replace must be true or false")
        url = urlsplit(body["url"])
        presigned = Presigned.parse(url.path, dict(parse_qsl(url.query)))
        if presigned is None or self._url_problem(presigned, uploading=False) is not None:
            return _fail(400, "url is not a custom list upload URL of this account")
        content = self.files.get(presigned.token)
        if content is None:
            return _fail(400, "No file was uploaded to url")
        try:
            rows = read_custom_list(content)
        except ValueError as error:
            return _fail(400, str(error))
        found = self._users(rows)
        segment = self.list_named(body["name"]) or self.create_list(body["name"])
        with self.lock:
            if replace:
                segment.members.clear()
            segment.members.update((identity, {}) for identity in found)
            self.unmatched[segment.id] = len(rows) - len(found)
            self.received += len(rows)
        return JSONResponse({"Segment ID": int(segment.id), "status": "success"})

    def _users(self, rows: list[tuple[str, str]]) -> list[str]:
        """The identities of the users a custom list's rows name (rows naming nobody left out)."""
        with self.lock:
            by_clevertap_id = {ct_id: identity for identity, ct_id in self.clevertap_ids.items()}
            named = (value if kind == "i" else by_clevertap_id.get(value) for kind, value in rows)
            return [identity for identity in named if identity in self.profiles]

    def clevertap_id(self, identity: str) -> str:
        """The CleverTap ID (objectId) of the profile with ``identity``."""
        with self.lock:
            return self.clevertap_ids[identity]


def create_app(state: CleverTapSandbox) -> Starlette:
    """The emulator's ASGI app: CleverTap's API, the S3 bucket of its presigned URLs, and the
    sandbox controls."""
    return Starlette(
        routes=[
            partner_route(state, "/v1/connect", "GET", state.connect),
            partner_route(state, "/1/upload", "POST", state.upload),
            partner_route(state, "/get_custom_list_segment_url", "POST", state.custom_list_url),
            partner_route(
                state,
                "/upload_custom_list_segment_completed",
                "POST",
                state.custom_list_completed,
            ),
            Route(f"{S3_PATH}/{{token}}", state.put_file, methods=["PUT"]),
            *control_routes(state),
        ]
    )
