"""Request-body caps counted on the stream (issue 15, red-team findings 1 and 3): a chunked body
without ``Content-Length`` over its route's cap is answered 413 as soon as the count passes the
cap, before sign-in and before any parsing (no JSON read into memory, no multipart spooled to
/tmp), on the API, ingestion and every web form route; each route keeps its own cap."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cohortsync.app import create_app
from cohortsync.domain.accounts import Project
from cohortsync.security_headers import PAGE_POLICY
from cohortsync.settings import Settings
from cohortsync.web.session import COOKIE, CSRF_HEADER, csrf_for
from tests.conftest import TEST_KEY, serving
from tests.helpers import admin_token

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

CAP = 1_048_576  # the default max_body_bytes
CHUNK = 64 * 1024
SENT_AT_MOST = 8 * CAP  # what a sender would go on to send if nobody answered
BOUNDARY = "cap"
MULTIPART = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
    "Content-Type: text/csv\r\n\r\ndistinct_id\r\n"
).encode()


@dataclass
class Received:
    """The body bytes the app pulled from the server, per request (seen from outside it)."""

    counts: list[int] = field(default_factory=list)


class Counting:
    """ASGI middleware (outermost) counting the body bytes the app below it receives."""

    def __init__(self, app: ASGIApp, received: Received) -> None:
        self.app = app
        self.received = received

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, counting its body as the app pulls it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.received.counts.append(0)

        async def counted() -> Message:
            message = await receive()
            self.received.counts[-1] += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


@dataclass
class Server:
    """A live server whose app counts the body bytes it pulls."""

    url: str
    received: Received
    engine: Engine


@pytest.fixture
def server(engine: Engine, database_url: str, project: Project) -> Iterator[Server]:
    """The app with the test settings on loopback, with a body counter around it."""
    settings = Settings(database_url=database_url, secret_key=SecretStr(TEST_KEY))
    app = create_app(settings, engine=engine)
    received = Received()
    app.add_middleware(Counting, received=received)
    with serving(app) as url:
        yield Server(url, received, engine)


@dataclass(frozen=True)
class Reply:
    """A raw HTTP reply, and how much body had been sent when it came."""

    status: int
    headers: dict[str, str]
    body: bytes
    sent: int


def _read_reply(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection without answering"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split(" ")[1]), headers, body


def _head(url: str, path: str, content_type: str, signed_in: str | None) -> str:
    lines = [f"POST {path} HTTP/1.1", f"Host: {urlsplit(url).netloc}"]
    lines += [f"Content-Type: {content_type}", "Transfer-Encoding: chunked"]
    if signed_in is not None:  # an API bearer token, also the web session and its CSRF token
        lines += [f"Authorization: Bearer {signed_in}", f"Cookie: {COOKIE}={signed_in}"]
        lines.append(f"{CSRF_HEADER}: {csrf_for(signed_in)}")
    return "\r\n".join(lines) + "\r\n\r\n"


def post_chunked(
    url: str, path: str, content_type: str, opening: bytes = b"", signed_in: str | None = None
) -> Reply:
    """POST an endless-looking chunked body (no Content-Length) to ``path``, chunk after chunk
    from a thread, until the server answers (or ``SENT_AT_MOST`` went out)."""
    where = urlsplit(url)
    sock = socket.create_connection((where.hostname or "", where.port or 80), timeout=30)
    head = _head(url, path, content_type, signed_in)
    answered = threading.Event()
    sent = [0]

    def send_body() -> None:
        try:
            payload = opening + b"x" * (CHUNK - len(opening))
            while sent[0] < SENT_AT_MOST and not answered.is_set():
                sock.sendall(b"%x\r\n%s\r\n" % (len(payload), payload))
                sent[0] += len(payload)
                payload = b"x" * CHUNK
            if not answered.is_set():
                sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server may stop reading once it has answered
            pass

    with sock:
        sock.sendall(head.encode())
        sender = threading.Thread(target=send_body)
        sender.start()
        try:
            status, headers, body = _read_reply(sock)
        finally:
            answered.set()
            sender.join()
    return Reply(status, headers, body, sent[0])


API = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


@pytest.mark.parametrize(
    ("path", "content_type", "opening", "signed_in"),
    [
        ("/api/v1/login", API, b'{"email": "', False),
        ("/api/v1/projects/1/cohorts", API, b'{"name": "', False),
        ("/api/v1/projects/1/syncs/preview", API, b"", False),
        ("/login", FORM, b"email=", False),
        ("/login", MULTIPART_TYPE, MULTIPART, False),
        ("/projects/1/cohorts", MULTIPART_TYPE, MULTIPART, True),  # the builder's form
        ("/projects/1/cohorts/1/export/1", FORM, b"mode=", True),
    ],
)
def test_a_chunked_body_over_the_cap_is_refused_as_it_arrives(
    server: Server, path: str, content_type: str, opening: bytes, signed_in: bool
) -> None:
    token = admin_token(server.engine, 1) if signed_in else None
    reply = post_chunked(server.url, path, content_type, opening, token)

    assert reply.status == 413, reply.body[:300]
    assert reply.headers["content-security-policy"] == PAGE_POLICY
    assert reply.headers["x-content-type-options"] == "nosniff"
    if path.startswith("/api/"):
        error = json.loads(reply.body)["error"]
        assert error["code"] == "payload_too_large"
        assert "1,048,576 bytes" in error["message"]
    else:
        assert reply.headers["content-type"].startswith("text/html")
        assert b"1,048,576 bytes" in reply.body
    # the app stopped pulling the body just past the cap (one buffered read of the server's)
    assert CAP < server.received.counts[-1] <= CAP + 4 * CHUNK
    assert reply.sent < SENT_AT_MOST  # answered before the sender was through


@pytest.mark.parametrize(
    ("path", "over_the_default"),
    [
        ("/track", "not refused by the default cap: the 10 MB of ingestion apply"),
        ("/api/v1/projects/1/cohorts/static", "16 MiB apply to a static cohort's list"),
    ],
)
def test_routes_with_caps_of_their_own_take_more_than_the_default(
    server: Server, path: str, over_the_default: str
) -> None:
    opening = b"data=" if path == "/track" else b'{"name": "'
    token = admin_token(server.engine, 1)
    reply = post_chunked_exactly(server.url, path, opening, 2 * CAP, token)

    assert reply.status != 413, over_the_default
    assert server.received.counts[-1] == 2 * CAP


def post_chunked_exactly(url: str, path: str, opening: bytes, size: int, token: str) -> Reply:
    """POST ``size`` bytes, chunked, in full (no answer is expected before the end)."""
    where = urlsplit(url)
    with socket.create_connection((where.hostname or "", where.port or 80), timeout=30) as sock:
        sock.sendall(_head(url, path, FORM, token).encode())
        body = opening + b"x" * (size - len(opening))
        for start in range(0, size, CHUNK):
            part = body[start : start + CHUNK]
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        sock.sendall(b"0\r\n\r\n")
        status, headers, answer = _read_reply(sock)
    return Reply(status, headers, answer, size)


def test_a_declared_length_over_the_cap_is_refused_before_the_body(server: Server) -> None:
    where = urlsplit(server.url)
    with socket.create_connection((where.hostname or "", where.port or 80), timeout=30) as sock:
        sock.sendall(
            f"POST /api/v1/projects/1/cohorts/static HTTP/1.1\r\nHost: {where.netloc}\r\n"
            f"Content-Type: {API}\r\nContent-Length: {16 * CAP + 1}\r\n\r\n".encode()
        )
        status, _headers, body = _read_reply(sock)

    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert server.received.counts[-1] == 0
