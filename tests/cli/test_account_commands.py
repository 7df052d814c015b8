"""``cohortsync users …`` and ``cohortsync tokens …`` in this process (typer's runner), on both
engines: passwords from a prompt or stdin only, people disabled, enabled and removed (the last
admin kept unless forced), tokens that expire, listed without the token, and revoked; each
change audited as done by the CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner, Result

from cohortsync.cli.main import app
from cohortsync.clock import SystemClock
from cohortsync.domain.accounts import Project
from cohortsync.settings import load_settings
from cohortsync.storage.database import read_transaction
from cohortsync.storage.tables import audit_log
from tests.helpers import accounts

Cli = Callable[..., Result]
PASSWORD = "a long password"


@pytest.fixture
def cli(database_url: str, project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    """``cohortsync`` on the test database: ``cli("users", "list", input=...)``."""
    monkeypatch.setenv("COHORTSYNC_DATABASE_URL", database_url)
    load_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input)

    yield invoke
    load_settings.cache_clear()


def _ok(result: Result) -> str:
    """What the command printed (stdout and stderr), once it succeeded."""
    assert result.exit_code == 0, result.output
    return result.output


def test_a_password_comes_from_a_hidden_prompt_or_stdin_never_the_command_line(
    cli: Cli, engine: Engine
) -> None:
    prompted = _ok(
        cli("users", "create", "--email", "a@x.io", "--role", "admin", input=f"{PASSWORD}\n" * 2)
    )
    assert "Password:" in prompted and "Repeat for confirmation:" in prompted
    assert PASSWORD not in prompted
    assert accounts(engine).login("a@x.io", PASSWORD)

    refused = cli("users", "create", "--email", "b@x.io", "--password", PASSWORD)
    assert refused.exit_code == 1
    assert "--password is no longer accepted" in refused.output
    assert "--password-stdin" in refused.output
    assert accounts(engine).user_by_email("b@x.io") is None

    token = _ok(cli("tokens", "create", "--email", "a@x.io")).splitlines()[0]
    changed = _ok(
        cli("users", "set-password", "--email", "A@x.io", "--password-stdin", input="the new one\n")
    )
    assert "password of a@x.io changed; 2 token(s) revoked" in changed  # the CLI's, the login
    assert accounts(engine).user_for_token(token) is None
    assert accounts(engine).login("a@x.io", "the new one")
    short = cli("users", "set-password", "--email", "a@x.io", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and "at least 8 characters" in short.output

    with read_transaction(engine) as connection:
        entries = connection.execute(
            sa.select(audit_log.c.actor, audit_log.c.action, audit_log.c.detail)
            .where(audit_log.c.action.in_(["user.create", "user.password", "token.create"]))
            .order_by(audit_log.c.id)
        ).all()
    assert [(e.actor, e.action) for e in entries] == [
        ("cli", "user.create"),
        ("cli", "token.create"),
        ("cli", "user.password"),
    ]
    assert PASSWORD.encode() not in orjson.dumps([e.detail for e in entries])


def test_people_are_listed_disabled_enabled_and_removed_keeping_the_last_admin(
    cli: Cli, engine: Engine, project: Project
) -> None:
    for email, role in (("root@x.io", "admin"), ("ana@x.io", "member")):
        _ok(
            cli(
                "users",
                "create",
                "--email",
                email,
                "--role",
                role,
                "--password-stdin",
                input=PASSWORD,
            )
        )
    listed = _ok(cli("users", "list")).splitlines()
    assert [line.split("\t")[1:4] for line in listed] == [
        ["ana@x.io", f"{project.id}:member", "active"],
        ["root@x.io", f"{project.id}:admin", "active"],
    ]
    for verb in ("disable", "remove"):
        kept = cli("users", verb, "--email", "root@x.io")
        assert kept.exit_code == 1
        assert f"last admin of project {project.id}" in kept.output and "--force" in kept.output

    session = accounts(engine).login("ana@x.io", PASSWORD)
    assert "ana@x.io is disabled" in _ok(cli("users", "disable", "--email", "ana@x.io"))
    assert accounts(engine).user_for_token(session) is None
    assert "\tdisabled " in _ok(cli("users", "list")).splitlines()[0]
    _ok(cli("users", "enable", "--email", "ana@x.io"))
    assert accounts(engine).login("ana@x.io", PASSWORD)
    _ok(cli("users", "remove", "--email", "ana@x.io"))
    _ok(cli("users", "disable", "--email", "root@x.io", "--force"))
    missing = cli("users", "enable", "--email", "ana@x.io")
    assert missing.exit_code == 1 and "no user with email 'ana@x.io'" in missing.output
    assert [line.split("\t")[1] for line in _ok(cli("users", "list")).splitlines()] == ["root@x.io"]


def test_tokens_expire_are_listed_without_the_token_and_are_revoked(
    cli: Cli, engine: Engine
) -> None:
    _ok(cli("users", "create", "--email", "a@x.io", "--password-stdin", input=PASSWORD))
    _ok(cli("users", "create", "--email", "b@x.io", "--password-stdin", input=PASSWORD))
    made = [
        cli("tokens", "create", "--email", "a@x.io"),
        cli("tokens", "create", "--email", "a@x.io", "--name", "ci", "--days", "7"),
        cli("tokens", "create", "--email", "b@x.io", "--days", "0"),
    ]
    assert "it lasts 90 days" in _ok(made[0]) and "it lasts until revoked" in _ok(made[2])
    secrets = [result.stdout.strip() for result in made]  # the token alone on stdout
    assert all(secret.startswith("cst_") for secret in secrets)

    rows = [line.split("\t") for line in _ok(cli("tokens", "list")).splitlines()]
    assert [(r[1], r[2]) for r in rows] == [("cli", "a@x.io"), ("ci", "a@x.io"), ("cli", "b@x.io")]
    expires = datetime.strptime(rows[1][4], "%Y-%m-%d %H:%M UTC").replace(tzinfo=UTC)
    assert abs(expires - (SystemClock().now() + timedelta(days=7))) < timedelta(minutes=2)
    assert rows[2][4] == "never"
    listing = _ok(cli("tokens", "list")) + _ok(cli("tokens", "list", "--email", "b@x.io"))
    assert not any(secret in listing for secret in secrets)

    assert f"token {rows[0][0]} is revoked" in _ok(cli("tokens", "revoke", rows[0][0]))
    people = accounts(engine)
    assert people.user_for_token(secrets[0]) is None and people.user_for_token(secrets[1])
    gone = cli("tokens", "revoke", rows[0][0])
    assert gone.exit_code == 1 and "no token" in gone.output
    assert "1 token(s) of a@x.io revoked" in _ok(
        cli("tokens", "revoke", "--all", "--email", "a@x.io")
    )
    assert people.user_for_token(secrets[1]) is None and people.user_for_token(secrets[2])
    vague = cli("tokens", "revoke", "--all")
    assert vague.exit_code == 1 and "--all --email E" in vague.output
    with read_transaction(engine) as connection:
        revokes = connection.execute(
            sa.select(sa.func.count()).where(audit_log.c.action == "token.revoke")
        ).scalar()
    assert revokes == 2

    people.login("b@x.io", PASSWORD)  # a sign-in session ends after the login lifetime
    session = [r.split("\t") for r in _ok(cli("tokens", "list", "--email", "b@x.io")).splitlines()]
    ends = datetime.strptime(session[-1][4], "%Y-%m-%d %H:%M UTC").replace(tzinfo=UTC)
    assert session[-1][1] == "login"
    assert abs(ends - (SystemClock().now() + timedelta(hours=12))) < timedelta(minutes=2)
