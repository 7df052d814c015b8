"""The outbound-guard table (issue 15, finding 1): a partner or webhook URL pointing at this
machine, in any spelling, through a redirect or behind a name, reaches no listener; the address
rule allows public addresses only; the connection goes to the address that was checked."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator, Sequence

import httpx
import pytest
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from cohortsync.clock import SystemClock
from cohortsync.destinations import registry
from cohortsync.destinations.connection import ConnectorConfig
from cohortsync.destinations.errors import EndpointRefused, PartnerConfigError, TransientError
from cohortsync.destinations.http import RetryPolicy
from cohortsync.domain.accounts import Project
from cohortsync.domain.errors import BatchError
from cohortsync.keyring import Keyring
from cohortsync.outbound.addresses import refusal, system_resolver
from cohortsync.outbound.guard import OutboundGuard, OutboundRefused
from cohortsync.outbound.transport import GuardedTransport
from cohortsync.sandbox.server import RunningServer, start
from cohortsync.services.integrations import IntegrationService
from tests.conftest import TEST_KEY
from tests.loopback import Listener

ALLOW_HINT = "set COHORTSYNC_ALLOW_PRIVATE_ENDPOINTS=1 if this is intended"
NAMES = {"partner.example": ["127.0.0.1"], "mixed.example": ["93.184.216.34", "10.0.0.5"]}


def names(host: str, port: int) -> Sequence[str]:
    """The test's names (a seam the guard owns), else the system's."""
    return NAMES.get(host) or system_resolver(host, port)


STRICT = OutboundGuard(resolve=names)


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as made:
        yield made


def webhook_check(url: str, guard: OutboundGuard, timeout: float = 2.0) -> None:
    """The webhook connector's connection check of ``url``, as a connect or an edit runs it."""
    spec = registry.partner("webhook")
    settings = registry.check_settings(spec, {"url": url}, allow_custom_endpoints=False)
    config = ConnectorConfig(
        credentials={"username": "u", "password": "p"},
        settings=settings,
        base_url=registry.base_url(spec, settings),
        retry=RetryPolicy(attempts=1),
        timeout=timeout,
        guard=guard,
    )
    destination = spec.build(config)
    try:
        destination.check()
    finally:
        destination.close()


SPELLINGS = [
    "127.0.0.1",
    "2130706433",  # decimal
    "0x7f.1",  # hex, short
    "0x7f000001",
    "017700000001",  # octal, whole
    "127.1",  # short
    "127.0.0.1.",  # trailing dot
    "localhost",
    "LOCALHOST.",
    "api.localhost",
    "0",  # 0.0.0.0 reaches this machine on Linux
    "0.0.0.0",
    "[::1]",
    "[::]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",  # IPv4-compatible
    "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
    "[64:ff9b::7f00:1]",  # NAT64 of 127.0.0.1
    "partner.example",  # a name resolving to loopback
]


@pytest.mark.parametrize("host", SPELLINGS)
def test_no_spelling_of_this_machine_reaches_a_listener(listener: Listener, host: str) -> None:
    with pytest.raises(EndpointRefused) as refused:
        webhook_check(f"http://{host}:{listener.port}/hook", STRICT)
    assert ALLOW_HINT in refused.value.message
    assert listener.connections() == 0


def test_octal_dotted_quad_is_refused_as_a_url(listener: Listener) -> None:
    invalid = re.escape("settings.url must be an http:// or https:// URL with a valid host")
    with pytest.raises(BatchError, match=invalid):
        webhook_check(f"http://0177.0.0.1:{listener.port}/hook", STRICT)
    with pytest.raises(OutboundRefused, match=re.escape("a loopback address 127.0.0.1")):
        STRICT.addresses("0177.0.0.1", listener.port)  # had the URL been taken
    assert listener.connections() == 0


def test_the_listener_sees_what_the_guard_lets_through(listener: Listener) -> None:
    """The control: with private endpoints allowed the same spelling does connect."""
    with pytest.raises(TransientError):  # a bare socket never answers
        url = f"http://2130706433:{listener.port}/hook"
        webhook_check(url, OutboundGuard(allow_private=True), timeout=0.2)
    assert listener.connections() == 1


def test_one_private_address_among_public_ones_refuses_the_host(listener: Listener) -> None:
    with pytest.raises(EndpointRefused, match=re.escape("a private address 10.0.0.5")):
        webhook_check(f"http://mixed.example:{listener.port}/hook", STRICT)


def test_an_open_port_and_a_closed_one_are_refused_alike(listener: Listener) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    messages = []
    for port in (listener.port, closed_port):
        with pytest.raises(EndpointRefused) as refused:
            webhook_check(f"http://127.0.0.1:{port}/hook", STRICT)
        messages.append(refused.value.message)
    assert messages[0] == messages[1]
    assert listener.connections() == 0


@pytest.fixture
def public_stand_in(listener: Listener) -> Iterator[RunningServer]:
    """A server on 127.0.0.2 standing for a public host (the test's address rule lets it
    through) that redirects every request to the listener on 127.0.0.1."""
    target = f"http://127.0.0.1:{listener.port}/hook"

    async def redirect(request: Request) -> Response:
        return RedirectResponse(target, status_code=307)

    routes = [Route("/{path:path}", redirect, methods=["GET", "POST"])]
    server = start(Starlette(routes=routes), host="127.0.0.2")
    yield server
    server.stop()


def stand_in_rule(address: str) -> str | None:
    return None if address == "127.0.0.2" else refusal(address)


def stand_in_names(host: str, port: int) -> Sequence[str]:
    return ["127.0.0.2"] if host == "partner.example" else system_resolver(host, port)


STAND_IN = OutboundGuard(resolve=stand_in_names, refuses=stand_in_rule)


def test_a_connector_does_not_follow_a_redirect(
    listener: Listener, public_stand_in: RunningServer
) -> None:
    port = public_stand_in.url.rsplit(":", 1)[1]
    with pytest.raises(PartnerConfigError, match="HTTP 307"):
        webhook_check(f"http://partner.example:{port}/hook", STAND_IN)
    assert listener.connections() == 0


def test_a_followed_redirect_is_checked_again(
    listener: Listener, public_stand_in: RunningServer
) -> None:
    port = public_stand_in.url.rsplit(":", 1)[1]
    client = httpx.Client(transport=GuardedTransport(STAND_IN), follow_redirects=True)
    with client, pytest.raises(OutboundRefused, match=re.escape("a loopback address 127.0.0.1")):
        client.get(f"http://partner.example:{port}/hook")
    assert listener.connections() == 0


def test_the_connection_goes_to_the_address_that_was_checked(listener: Listener) -> None:
    """A name answering a public address, then loopback (DNS rebinding): one lookup, and the
    connection goes to what it answered."""
    answered = []

    def rebinding(host: str, port: int) -> list[str]:
        answered.append(host)
        return ["127.0.0.2"] if len(answered) == 1 else ["127.0.0.1"]

    async def hook(request: Request) -> JSONResponse:
        return JSONResponse({"action": "add_members", "status": "success"})

    server = start(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), host="127.0.0.2")
    try:
        port = server.url.rsplit(":", 1)[1]
        guard = OutboundGuard(resolve=rebinding, refuses=stand_in_rule)
        webhook_check(f"http://rebinding.example:{port}/hook", guard)
    finally:
        server.stop()
    assert answered == ["rebinding.example"]
    assert listener.connections() == 0


def test_a_connect_to_this_machine_is_refused_and_nothing_is_stored(
    engine: Engine, project: Project, listener: Listener
) -> None:
    service = IntegrationService(engine, Keyring([TEST_KEY]), SystemClock(), guard=STRICT)
    with pytest.raises(OutboundRefused) as refused:
        service.connect(
            project.id,
            "webhook",
            {"username": "u", "password": "p"},
            {"url": f"http://2130706433:{listener.port}/hook"},
        )
    assert refused.value.message == (
        "Webhook was not called: 2130706433 resolves to a loopback address 127.0.0.1; " + ALLOW_HINT
    )
    assert service.list(project.id) == []
    assert listener.connections() == 0


REFUSED = {
    "10.0.0.5": "a private address",
    "172.16.0.1": "a private address",
    "192.168.1.1": "a private address",
    "100.64.0.1": "a shared (carrier-grade NAT) address",
    "169.254.169.254": "the cloud metadata address",
    "169.254.1.1": "a link-local address",
    "fd00:ec2::254": "the cloud metadata address",
    "fe80::1": "a link-local address",
    "fe80::1%eth0": "a link-local address",
    "fc00::1": "a unique-local address",
    "fd12:3456::1": "a unique-local address",
    "224.0.0.1": "a multicast address",
    "ff02::1": "a multicast address",
    "240.0.0.1": "a reserved address",
    "255.255.255.255": "a reserved address",
    "192.0.2.1": "a reserved address",  # documentation
    "0.0.0.0": "an unspecified address",
    "::": "an unspecified address",
    "::1": "a loopback address",
    "127.8.9.10": "a loopback address",
    "::ffff:10.0.0.1": "a private address",
    "::a00:1": "a private address",  # IPv4-compatible 10.0.0.1
    "2002:a9fe:a9fe::": "the cloud metadata address",  # 6to4 of 169.254.169.254
    "64:ff9b::c0a8:101": "a private address",  # NAT64 of 192.168.1.1
    "localhost": "not an IP address",
}
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"]


@pytest.mark.parametrize(("address", "kind"), REFUSED.items())
def test_the_rule_refuses_every_non_public_address(address: str, kind: str) -> None:
    assert refusal(address) == kind


@pytest.mark.parametrize("address", PUBLIC)
def test_the_rule_lets_public_addresses_through(address: str) -> None:
    assert refusal(address) is None
