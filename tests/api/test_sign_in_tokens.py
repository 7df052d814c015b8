"""Sign-in tokens (POST /api/v1/login, web sessions) expire after COHORTSYNC_SESSION_HOURS;
tokens an operator creates for scripts after COHORTSYNC_TOKEN_DAYS (or never, with 0). Tokens
can be revoked; a disabled person's tokens stop working at once, and so do everyone's tokens
and sessions after their password changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cohortsync.clock import FrozenClock
from cohortsync.domain.accounts import Project, Role
from cohortsync.domain.errors import AuthenticationError, Conflict, NotFound
from cohortsync.services.accounts import DEFAULT_LOGIN_LIFETIME, AccountService
from cohortsync.storage.database import read_transaction
from cohortsync.storage.tables import audit_log
from tests.conftest import NOW, LiveServer
from tests.helpers import accounts

PASSWORD = "correct horse battery"
HOURS = timedelta(hours=3)


def _email_of(service: AccountService, token: str) -> str | None:
    found = service.user_for_token(token)
    return found.email if found else None


def test_a_sign_in_token_lasts_its_lifetime_and_a_created_token_its_days(
    engine: Engine, project: Project
) -> None:
    people = accounts(engine, FrozenClock(NOW), token_days=30)
    people.create_user("a@x.io", PASSWORD, Role.ADMIN, project.id)
    script = people.create_token("a@x.io")
    longer = people.create_token("a@x.io", "nightly", days=400)
    forever = people.create_token("a@x.io", "forever", days=0)
    signed_in = people.login("a@x.io", PASSWORD)

    def user(token: str, at: timedelta) -> str | None:
        return _email_of(accounts(engine, FrozenClock(NOW + at), HOURS), token)

    assert user(signed_in, HOURS - timedelta(seconds=1)) == "a@x.io"
    assert user(signed_in, HOURS) is None
    assert user(script, timedelta(days=30) - timedelta(seconds=1)) == "a@x.io"
    assert user(script, timedelta(days=30)) is None
    assert user(longer, timedelta(days=399)) == "a@x.io"
    assert user(forever, timedelta(days=10_000)) == "a@x.io"
    listed = {t.name: t.expires_at for t in people.tokens("a@x.io")}
    assert listed == {
        "cli": NOW + timedelta(days=30),
        "nightly": NOW + timedelta(days=400),
        "forever": None,
        "login": NOW + DEFAULT_LOGIN_LIFETIME,  # a session ends the login lifetime after it began
    }


def test_an_api_sign_in_token_expires_on_the_servers_clock(
    live_server: LiveServer, project: Project
) -> None:
    accounts(live_server.engine).create_user("a@x.io", PASSWORD, Role.ADMIN, project.id)
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
    people = accounts(engine, clock, HOURS)
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
        return accounts(engine, FrozenClock(NOW)).user_for_token(token) is not None

    assert not stored(old)  # expired, and gone
    assert stored(recent) and stored(someone_else) and stored(script)


def test_revoked_tokens_stop_working_and_listing_never_shows_a_token(
    engine: Engine, project: Project
) -> None:
    people = accounts(engine, FrozenClock(NOW))
    people.create_user("a@x.io", PASSWORD, Role.ADMIN, project.id)
    people.create_user("b@x.io", PASSWORD, Role.MEMBER, project.id)
    first, second = people.create_token("a@x.io"), people.create_token("a@x.io", "ci")
    session, other = people.login("a@x.io", PASSWORD), people.create_token("b@x.io")
    listed = people.tokens()
    assert [(t.name, t.email) for t in listed] == [
        ("cli", "a@x.io"),
        ("ci", "a@x.io"),
        ("login", "a@x.io"),
        ("cli", "b@x.io"),
    ]
    assert not any(secret in repr(listed) for secret in (first, second, session, other))

    people.revoke(listed[0].id)
    assert _email_of(people, first) is None and _email_of(people, second) == "a@x.io"
    with pytest.raises(NotFound, match="tokens list"):
        people.revoke(listed[0].id)
    assert people.revoke_all("A@x.io") == 2  # the other token and the session
    assert _email_of(people, second) is None and _email_of(people, session) is None
    assert _email_of(people, other) == "b@x.io"
    with pytest.raises(Conflict, match="kept for sign-in sessions"):
        people.create_token("a@x.io", "login")


def test_a_disabled_person_is_signed_out_everywhere_and_cannot_sign_in(
    live_server: LiveServer, project: Project
) -> None:
    people = accounts(live_server.engine, live_server.clock)
    people.create_user("boss@x.io", PASSWORD, Role.ADMIN, project.id)
    people.create_user("a@x.io", PASSWORD, Role.ADMIN, project.id)
    script = people.create_token("a@x.io", days=0)
    with live_server.client() as client:
        signed = client.post("/login", data={"email": "a@x.io", "password": PASSWORD})
        assert signed.status_code == 303
        assert client.get("/", follow_redirects=False).headers["location"].startswith("/projects")
        people.disable("a@x.io")
        bearer = {"Authorization": f"Bearer {script}"}
        assert client.get("/api/v1/projects", headers=bearer).status_code == 401
        assert client.get("/", follow_redirects=False).headers["location"] == "/login"
        refused = client.post("/api/v1/login", json={"email": "a@x.io", "password": PASSWORD})
        assert refused.status_code == 401
        assert refused.json()["error"]["message"] == "email or password is wrong"

        people.enable("a@x.io")
        assert client.get("/api/v1/projects", headers=bearer).status_code == 401  # stays revoked
        again = client.post("/api/v1/login", json={"email": "a@x.io", "password": PASSWORD})
        assert again.status_code == 200
    assert [p.disabled_at for p in people.people()] == [None, None]


def test_a_new_password_revokes_every_session_and_token(engine: Engine, project: Project) -> None:
    people = accounts(engine, FrozenClock(NOW))
    people.create_user("a@x.io", PASSWORD, Role.ADMIN, project.id)
    script, session = people.create_token("a@x.io"), people.login("a@x.io", PASSWORD)
    assert people.set_password("a@x.io", "a brand new one") == 2
    assert _email_of(people, script) is None and _email_of(people, session) is None
    with pytest.raises(AuthenticationError):
        people.login("a@x.io", PASSWORD)
    renewed = people.login("a@x.io", "a brand new one")
    people.create_user("a@x.io", "a brand new one", Role.ADMIN, project.id)  # the same: kept
    assert _email_of(people, renewed) == "a@x.io"
    people.create_user("a@x.io", "third password", Role.MEMBER, project.id)  # another: revoked
    assert _email_of(people, renewed) is None
    with pytest.raises(Conflict, match="at least 8"):
        people.set_password("a@x.io", "short")


def test_the_last_admin_stays_unless_forced_and_a_removed_person_keeps_their_audit_entries(
    engine: Engine, project: Project
) -> None:
    people = accounts(engine, FrozenClock(NOW))
    people.create_user("a@x.io", PASSWORD, Role.ADMIN, project.id)
    people.create_user("m@x.io", PASSWORD, Role.MEMBER, project.id)
    people.login("a@x.io", PASSWORD)  # an audit entry with a@x.io as the actor
    for refused in (people.disable, people.remove):
        with pytest.raises(Conflict, match=f"last admin of project {project.id}"):
            refused("a@x.io")
    people.create_user("b@x.io", PASSWORD, Role.ADMIN, project.id)
    people.disable("b@x.io")  # a disabled admin does not count
    with pytest.raises(Conflict, match="--force"):
        people.remove("a@x.io")
    people.enable("b@x.io")
    people.remove("a@x.io")
    people.disable("b@x.io", force=True)
    people.remove("m@x.io")
    assert [p.email for p in people.people()] == ["b@x.io"]
    with pytest.raises(NotFound, match="users list"):
        people.disable("a@x.io")
    with read_transaction(engine) as connection:
        entries = connection.execute(
            sa.select(audit_log.c.actor, audit_log.c.action, audit_log.c.target).order_by(
                audit_log.c.id
            )
        ).all()
    assert ("a@x.io", "sign_in.succeeded") in [(e.actor, e.action) for e in entries]
    removals = [(e.actor, e.action) for e in entries if e.action.startswith("user.")]
    assert removals == [
        ("cli", "user.create"),
        ("cli", "user.create"),
        ("cli", "user.create"),
        ("cli", "user.disable"),
        ("cli", "user.enable"),
        ("cli", "user.remove"),
        ("cli", "user.disable"),
        ("cli", "user.remove"),
    ]
