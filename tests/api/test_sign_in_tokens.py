"""Sign-in tokens (POST /api/v1/login, web sessions) expire after COHORTSYNC_SESSION_HOURS;
tokens an operator creates for scripts do not."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine

from cohortsync.clock import FrozenClock
from cohortsync.domain.accounts import Project, Role
from cohortsync.services.accounts import AccountService
from tests.conftest import NOW, LiveServer

PASSWORD = "correct horse battery"
HOURS = timedelta(hours=3)


def test_a_sign_in_token_lasts_its_lifetime_and_a_created_token_does_not_expire(
    engine: Engine, project: Project
) -> None:
    people = AccountService(engine, FrozenClock(NOW))
    people.create_user("a@x.io", PASSWORD, Role.ADMIN, project.id)
    script = people.create_token("a@x.io")
    signed_in = people.login("a@x.io", PASSWORD)

    def user(token: str, at: timedelta) -> str | None:
        found = AccountService(engine, FrozenClock(NOW + at), HOURS).user_for_token(token)
        return found.email if found else None

    assert user(signed_in, HOURS - timedelta(seconds=1)) == "a@x.io"
    assert user(signed_in, HOURS) is None
    assert user(script, timedelta(days=1000)) == "a@x.io"


def test_an_api_sign_in_token_expires_on_the_servers_clock(
    live_server: LiveServer, project: Project
) -> None:
    people = AccountService(live_server.engine, live_server.clock)
    people.create_user("a@x.io", PASSWORD, Role.ADMIN, project.id)
    with live_server.client() as client:
        answer = client.post("/api/v1/login", json={"email": "a@x.io", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {answer.json()['token']}"}
        assert client.get("/api/v1/projects", headers=headers).status_code == 200
        live_server.clock.advance(timedelta(hours=11, minutes=59))
        assert client.get("/api/v1/projects", headers=headers).status_code == 200
        live_server.clock.advance(timedelta(minutes=1))  # 12 hours, the default
        assert client.get("/api/v1/projects", headers=headers).status_code == 401


def test_signing_in_deletes_the_persons_expired_sign_in_tokens(
    engine: Engine, project: Project
) -> None:
    clock = FrozenClock(NOW)
    people = AccountService(engine, clock, HOURS)
    people.create_user("a@x.io", PASSWORD, Role.ADMIN, project.id)
    people.create_user("b@x.io", PASSWORD, Role.ADMIN, project.id)
    script = people.create_token("a@x.io")
    old = people.login("a@x.io", PASSWORD)
    someone_else = people.login("b@x.io", PASSWORD)
    clock.advance(HOURS - timedelta(minutes=1))
    recent = people.login("a@x.io", PASSWORD)
    clock.advance(timedelta(minutes=1))
    people.login("a@x.io", PASSWORD)

    def stored(token: str) -> bool:
        return AccountService(engine, FrozenClock(NOW)).user_for_token(token) is not None

    assert not stored(old)  # expired, and gone
    assert stored(recent) and stored(someone_else) and stored(script)
