"""Sign-in tokens (POST /api/v1/login, web sessions) expire after COHORTSYNC_SESSION_HOURS;
tokens an operator creates for scripts do not."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine

from cohortsync.domain.accounts import Project, Role
from cohortsync.services import accounts
from cohortsync.storage.database import read_transaction, write_transaction
from tests.conftest import NOW, LiveServer

PASSWORD = "correct horse battery"
HOURS = timedelta(hours=3)


def test_a_sign_in_token_lasts_its_lifetime_and_a_created_token_does_not_expire(
    engine: Engine, project: Project
) -> None:
    with write_transaction(engine) as connection:
        accounts.create_user(connection, "a@x.io", PASSWORD, Role.ADMIN, project.id)
        script = accounts.create_token(connection, "a@x.io", now=NOW)
    signed_in = accounts.login(engine, "a@x.io", PASSWORD, NOW)

    def user(token: str, at: timedelta) -> str | None:
        with read_transaction(engine) as connection:
            found = accounts.user_for_token(connection, token, now=NOW + at, login_lifetime=HOURS)
        return found.email if found else None

    assert user(signed_in, HOURS - timedelta(seconds=1)) == "a@x.io"
    assert user(signed_in, HOURS) is None
    assert user(script, timedelta(days=1000)) == "a@x.io"


def test_an_api_sign_in_token_expires_on_the_servers_clock(
    live_server: LiveServer, project: Project
) -> None:
    with write_transaction(live_server.engine) as connection:
        accounts.create_user(connection, "a@x.io", PASSWORD, Role.ADMIN, project.id)
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
    with write_transaction(engine) as connection:
        accounts.create_user(connection, "a@x.io", PASSWORD, Role.ADMIN, project.id)
        accounts.create_user(connection, "b@x.io", PASSWORD, Role.ADMIN, project.id)
        script = accounts.create_token(connection, "a@x.io", now=NOW)
    old = accounts.login(engine, "a@x.io", PASSWORD, NOW, HOURS)
    recent = accounts.login(engine, "a@x.io", PASSWORD, NOW + HOURS - timedelta(minutes=1), HOURS)
    someone_else = accounts.login(engine, "b@x.io", PASSWORD, NOW, HOURS)
    accounts.login(engine, "a@x.io", PASSWORD, NOW + HOURS, HOURS)

    def stored(token: str) -> bool:
        with read_transaction(engine) as connection:
            return accounts.user_for_token(connection, token, now=NOW) is not None

    assert not stored(old)  # expired, and gone
    assert stored(recent) and stored(someone_else) and stored(script)
