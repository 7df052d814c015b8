"""Signing in, hardened (issue 15, finding 7): failures throttled per account and per address
through the database with 429 + Retry-After (API and sign-in page), a lock that looks the same
for an unknown email, the same hashing work for an unknown email, scrypt at OWASP's parameters
kept in each hash with older hashes upgraded at sign-in, and a bound on concurrent hashing."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import timedelta

import httpx
import orjson
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from starlette.requests import Request

from cohortsync.app import create_app
from cohortsync.client_address import client_address
from cohortsync.clock import FrozenClock
from cohortsync.credentials import HashingSlots, PasswordHasher, ScryptParameters
from cohortsync.domain.accounts import Project, Role, SignInLimits, TooManySignIns
from cohortsync.domain.errors import AuthenticationError
from cohortsync.services.accounts import AccountService
from cohortsync.services.projects import ProjectService
from cohortsync.services.sign_in import address_key
from cohortsync.settings import Settings
from cohortsync.storage.database import read_transaction, write_transaction
from cohortsync.storage.tables import audit_log, sign_in_failures, users
from cohortsync.storage.user_store import UserStore
from tests.conftest import NOW, TEST_KEY, LiveServer
from tests.helpers import TEST_PASSWORD_COST, accounts, run_async

PASSWORD = "correct horse battery"
WINDOW = timedelta(minutes=15)


def _limits(per_account: int = 3, per_address: int = 100) -> SignInLimits:
    return SignInLimits(per_account=per_account, per_address=per_address, window=WINDOW)


def _refusal(service: AccountService, email: str, address: str | None = None) -> TooManySignIns:
    with pytest.raises(TooManySignIns) as refused:
        service.login(email, PASSWORD, address)
    return refused.value


def _fail(service: AccountService, email: str, times: int, address: str | None = None) -> None:
    for _ in range(times):
        with pytest.raises(AuthenticationError, match="email or password is wrong"):
            service.login(email, "not the password", address)


def test_the_default_is_owasps_scrypt_and_an_older_hash_is_upgraded_at_sign_in(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COHORTSYNC_PASSWORD_HASH_COST", raising=False)
    settings = Settings(database_url="sqlite://")
    assert settings.password_hash_cost == 17
    assert PasswordHasher().parameters == ScryptParameters(n=2**17, r=8, p=1)
    project, _ = ProjectService(sqlite_engine, FrozenClock(NOW)).ensure_default()
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1)
    old = f"scrypt${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    with write_transaction(sqlite_engine) as connection:
        store = UserStore(connection)
        store.set_role(store.insert("a@x.io", old, NOW), project.id, Role.ADMIN)

    service = AccountService.from_settings(sqlite_engine, FrozenClock(NOW), settings)
    assert service.login("a@x.io", PASSWORD)
    with read_transaction(sqlite_engine) as connection:
        upgraded = connection.execute(sa.select(users.c.password_hash)).scalar_one()
    assert upgraded.startswith("scrypt$131072$8$1$")  # made with 128 MiB, which scrypt allowed


def test_failures_lock_an_account_for_the_window_whether_or_not_it_exists(
    engine: Engine, project: Project
) -> None:
    clock = FrozenClock(NOW)
    service = accounts(engine, clock, limits=_limits(per_account=3))
    service.create_user("a@x.io", PASSWORD, Role.ADMIN, project.id)
    _fail(service, "a@x.io", 3)
    _fail(service, "ghost@x.io", 3)
    known, unknown = _refusal(service, "A@x.io"), _refusal(service, "ghost@x.io")
    assert (known.message, known.retry_after_seconds) == (
        unknown.message,
        unknown.retry_after_seconds,
    )
    assert known.retry_after_seconds == 900 and "try again in 15 minutes" in known.message

    clock.advance(WINDOW - timedelta(minutes=1))
    assert _refusal(service, "a@x.io").retry_after_seconds == 60
    clock.advance(timedelta(minutes=1))
    assert service.login("a@x.io", PASSWORD)


def test_old_failures_start_over_and_a_success_clears_the_account_but_not_the_address(
    engine: Engine, project: Project
) -> None:
    clock = FrozenClock(NOW)
    service = accounts(engine, clock, limits=_limits(per_account=3, per_address=4))
    service.create_user("a@x.io", PASSWORD, Role.ADMIN, project.id)
    here, elsewhere = "203.0.113.7", "198.51.100.9"
    _fail(service, "a@x.io", 2, here)
    clock.advance(WINDOW)  # outside the window: those two no longer count
    _fail(service, "a@x.io", 2, here)
    assert service.login("a@x.io", PASSWORD, here)  # clears the account's count
    _fail(service, "a@x.io", 2, here)  # 2 of 3 for the account; 4 of 4 for the address
    assert "this address" in _refusal(service, "a@x.io", here).message
    assert service.login("a@x.io", PASSWORD, elsewhere)

    with read_transaction(engine) as connection:
        entries = connection.execute(
            sa.select(audit_log.c.action, audit_log.c.project_id, audit_log.c.detail)
            .where(audit_log.c.action.startswith("sign_in."))
            .order_by(audit_log.c.id)
        ).all()
    assert [e.action for e in entries] == ["sign_in.failed"] * 4 + ["sign_in.succeeded"] + [
        "sign_in.failed"
    ] * 2 + ["sign_in.succeeded"]
    assert all(e.project_id is None for e in entries)
    assert entries[0].detail == {"email": "a@x.io", "address": here, "reason": "wrong password"}
    assert entries[-1].detail == {"email": "a@x.io", "address": elsewhere}
    assert "locked_until" in entries[-2].detail  # the failure that locked the address
    assert b"not the password" not in orjson.dumps([e.detail for e in entries])


def test_an_unknown_or_disabled_email_does_the_hashing_work_a_known_one_does(
    engine: Engine, project: Project
) -> None:
    slots = HashingSlots(limit=1, wait_seconds=0.01, queue=0)
    service = AccountService(
        engine, FrozenClock(NOW), password_cost=TEST_PASSWORD_COST, hashing=slots
    )
    service.create_user("a@x.io", PASSWORD, Role.ADMIN, project.id)
    service.create_user("b@x.io", PASSWORD, Role.ADMIN, project.id)
    service.disable("b@x.io")
    with slots.slot():  # every slot busy: whoever needs a hash is told to come back
        for email in ("a@x.io", "ghost@x.io", "b@x.io"):
            busy = _refusal(service, email)
            assert busy.retry_after_seconds == 1 and "busy" in busy.message
    assert service.login("a@x.io", PASSWORD)
    with pytest.raises(AuthenticationError):
        service.login("ghost@x.io", PASSWORD)


def test_the_api_and_the_sign_in_page_answer_429_with_retry_after(
    live_server: LiveServer, project: Project
) -> None:
    accounts(live_server.engine).create_user("a@x.io", PASSWORD, Role.ADMIN, project.id)
    wrong = {"password": "not the password"}
    with live_server.client() as client:
        bodies = []
        for email in ("a@x.io", "ghost@x.io"):  # 5 failures each: the default limit
            for _ in range(5):
                failed = client.post("/api/v1/login", json={"email": email, **wrong})
                assert failed.status_code == 401
            refused = client.post("/api/v1/login", json={"email": email, "password": PASSWORD})
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "900"
            bodies.append(refused.json())
        assert bodies[0] == bodies[1]
        assert bodies[0]["error"]["code"] == "too_many_requests"
        assert "try again in 15 minutes" in bodies[0]["error"]["message"]

        page = client.post("/login", data={"email": "a@x.io", "password": PASSWORD})
        assert page.status_code == 429 and page.headers["retry-after"] == "900"
        assert "Too many failed sign-ins" in page.text and 'name="password"' in page.text
        live_server.clock.advance(WINDOW)
        signed = client.post("/login", data={"email": "a@x.io", "password": PASSWORD})
        assert signed.status_code == 303


def test_the_address_is_the_peers_unless_a_trusted_proxy_names_it(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def request(forwarded: str) -> Request:
        headers = [(b"x-forwarded-for", forwarded.encode())]
        return Request({"type": "http", "headers": headers, "client": ("192.0.2.1", 5000)})

    assert client_address(request("203.0.113.5, 10.0.0.2"), trust_proxy=False) == "192.0.2.1"
    assert client_address(request("203.0.113.5, 10.0.0.2"), trust_proxy=True) == "10.0.0.2"
    assert client_address(request("not an address"), trust_proxy=True) == "192.0.2.1"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2:aaaa::1") == "address:2001:db8:1:2::/64"
    assert address_key("::ffff:203.0.113.5") == "address:203.0.113.5"

    ProjectService(sqlite_engine, FrozenClock(NOW)).ensure_default()
    for trusted, expected in ((False, 429), (True, 401)):
        settings = Settings(
            database_url="sqlite://",
            secret_key=SecretStr(TEST_KEY),
            trust_proxy=trusted,
            sign_in_address_failures=2,
            scheduler=False,
            ingest_processes=0,
        )
        app = create_app(settings, engine=sqlite_engine, clock=FrozenClock(NOW))
        try:
            answers = run_async(_sign_ins_from_one_peer(app, 3))
        finally:
            app.state.cohortsync.close()
        assert answers == [401, 401, expected]  # one peer; three addresses if trusted


async def _sign_ins_from_one_peer(app: FastAPI, count: int) -> list[int]:
    """Failed sign-ins, each naming another address in X-Forwarded-For, all from 127.0.0.1."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://cohorts.example") as api:
        return [
            (
                await api.post(
                    "/api/v1/login",
                    json={"email": f"p{n}@x.io", "password": "not the password"},
                    headers={"X-Forwarded-For": f"198.51.100.{n}"},
                )
            ).status_code
            for n in range(count)
        ]


def test_a_nul_character_in_the_email_is_a_wrong_sign_in_not_a_server_error(
    live_server: LiveServer, project: Project
) -> None:
    # PostgreSQL cannot store NUL: the attempt must not reach the failure count or the audit
    accounts(live_server.engine).create_user("a@x.io", PASSWORD, Role.ADMIN, project.id)
    with live_server.client() as client:
        api = client.post("/api/v1/login", json={"email": "a@x.io\x00", "password": PASSWORD})
        page = client.post("/login", data={"email": "a\x00@x.io", "password": "x\x00y"})
        signed = client.post("/api/v1/login", json={"email": "a@x.io", "password": PASSWORD})
    assert api.status_code == 401 and api.json()["error"]["code"] == "unauthorized"
    assert page.status_code == 200 and "email or password is wrong" in page.text
    assert signed.status_code == 200


def test_what_a_stranger_typed_as_an_email_is_kept_nowhere(engine: Engine) -> None:
    # people type passwords into the email field: neither the audit log nor the failure
    # counts may keep what was typed when it names no account
    service = accounts(engine, FrozenClock(NOW), limits=_limits())
    typed = "Tr0ub4dor&3-secret"
    _fail(service, typed, 3, "198.51.100.7")
    _fail(service, "jane.doe@corp.example", 1)
    with read_transaction(engine) as connection:
        logged = connection.execute(sa.select(audit_log)).all()
        counted = connection.execute(sa.select(sign_in_failures.c.key)).scalars().all()
    stored = orjson.dumps([tuple(row) for row in logged], default=str).decode() + str(counted)
    assert typed.lower() not in stored and "jane.doe" not in stored
    emails = [row.detail["email"] for row in logged]
    assert emails == ["(not an email address)"] * 3 + ["j***@corp.example"]
    with pytest.raises(TooManySignIns):  # the digest still counts the failures
        service.login(typed, PASSWORD)
