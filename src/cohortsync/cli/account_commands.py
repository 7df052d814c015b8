"""``cohortsync users …`` and ``cohortsync tokens …``: people who sign in, their passwords (read
from a prompt or standard input, never the command line) and their bearer tokens."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated

import typer
from sqlalchemy.engine import Engine

from cohortsync.cli.context import (
    ProjectOption,
    console,
    default_project_id,
    fail,
    friendly_errors,
    migrated_engine,
    out,
    settings,
)
from cohortsync.clock import SystemClock
from cohortsync.domain.accounts import Role
from cohortsync.services.accounts import AccountService

users_app = typer.Typer(help="People who sign in.", no_args_is_help=True)
tokens_app = typer.Typer(help="Bearer tokens for the API.", no_args_is_help=True)

Email = Annotated[str, typer.Option(help="Sign-in email.")]
Force = Annotated[
    bool, typer.Option("--force", help="Even when they are the last admin of a project.")
]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input (for scripts); "
        "without it the password is asked for, twice, and not shown.",
    ),
]
# Kept only to say why it is gone: a password on the command line ends up in the shell's
# history and in every `ps` listing.
RemovedPassword = Annotated[str | None, typer.Option("--password", hidden=True)]


def _accounts(engine: Engine) -> AccountService:
    return AccountService.from_settings(engine, SystemClock(), settings())


def _password(from_stdin: bool, removed: str | None) -> str:
    """The new password: from standard input's first line, or asked for with a hidden prompt."""
    if removed is not None:
        raise fail(
            "--password is no longer accepted (the command line shows up in shell history and "
            "`ps`); leave it out to be asked, or pipe the password in with --password-stdin"
        )
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    entered: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return entered


def _when(moment: datetime | None, none: str = "never") -> str:
    return none if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


@users_app.command("create")
@friendly_errors
def users_create(
    email: Email,
    role: Annotated[Role, typer.Option(help="admin or member.")] = Role.MEMBER,
    project: ProjectOption = None,
    password_stdin: PasswordStdin = False,
    password: RemovedPassword = None,
) -> None:
    """Create a person (or give an existing one a role in another project; their password is
    then replaced and they are signed out everywhere)."""
    secret = _password(password_stdin, password)
    project_id = default_project_id(project)
    with migrated_engine() as engine:
        user = _accounts(engine).create_user(email, secret, role, project_id)
    out.print(f"user {user.email} is {role.value} of project {project_id}")


@users_app.command("set-password")
@friendly_errors
def users_set_password(
    email: Email, password_stdin: PasswordStdin = False, password: RemovedPassword = None
) -> None:
    """Give a person a new password; their sessions and tokens stop working."""
    secret = _password(password_stdin, password)
    with migrated_engine() as engine:
        revoked = _accounts(engine).set_password(email, secret)
    out.print(f"password of {email.strip().lower()} changed; {revoked} token(s) revoked")


@users_app.command("list")
def users_list() -> None:
    """Everyone who can sign in: id, email, roles (project:role), status, created."""
    with migrated_engine() as engine:
        people = _accounts(engine).people()
    for person in people:
        roles = ",".join(f"{p}:{r.value}" for p, r in sorted(person.roles.items())) or "-"
        status = "active" if person.disabled_at is None else f"disabled {_when(person.disabled_at)}"
        print(f"{person.id}\t{person.email}\t{roles}\t{status}\t{_when(person.created_at)}")


@users_app.command("disable")
@friendly_errors
def users_disable(email: Email, force: Force = False) -> None:
    """Stop a person signing in; every session and token of theirs stops working now."""
    with migrated_engine() as engine:
        _accounts(engine).disable(email, force=force)
    out.print(f"user {email.strip().lower()} is disabled; their sessions and tokens are revoked")


@users_app.command("enable")
@friendly_errors
def users_enable(email: Email) -> None:
    """Let a disabled person sign in again."""
    with migrated_engine() as engine:
        _accounts(engine).enable(email)
    out.print(f"user {email.strip().lower()} may sign in again")


@users_app.command("remove")
@friendly_errors
def users_remove(email: Email, force: Force = False) -> None:
    """Delete a person with their roles and tokens (the audit log keeps their email)."""
    with migrated_engine() as engine:
        _accounts(engine).remove(email, force=force)
    out.print(f"user {email.strip().lower()} is removed")


@tokens_app.command("create")
@friendly_errors
def tokens_create(
    email: Annotated[str, typer.Option(help="Whose token.")],
    name: Annotated[str, typer.Option(help="A label for the token.")] = "cli",
    days: Annotated[
        int | None,
        typer.Option(help="Days it lasts (default COHORTSYNC_TOKEN_DAYS; 0: until revoked)."),
    ] = None,
) -> None:
    """Print a new bearer token for a user (shown once)."""
    with migrated_engine() as engine:
        token = _accounts(engine).create_token(email, name, days)
    print(token)
    lasts = settings().token_days if days is None else days
    console.print(f"it lasts {lasts} days" if lasts else "it lasts until revoked")


@tokens_app.command("list")
@friendly_errors
def tokens_list(
    email: Annotated[str | None, typer.Option(help="Only this person's tokens.")] = None,
) -> None:
    """Bearer tokens and sign-in sessions: id, name, user, created, expires (never the token)."""
    now = SystemClock().now()
    with migrated_engine() as engine:
        found = _accounts(engine).tokens(email)
    for token in found:
        expires = _when(token.expires_at)
        if token.expires_at is not None and token.expires_at <= now:
            expires += " (expired)"
        print(f"{token.id}\t{token.name}\t{token.email}\t{_when(token.created_at)}\t{expires}")


@tokens_app.command("revoke")
@friendly_errors
def tokens_revoke(
    token_id: Annotated[
        int | None, typer.Argument(metavar="ID", help="From `tokens list`.")
    ] = None,
    all_tokens: Annotated[
        bool, typer.Option("--all", help="Every token and session of --email.")
    ] = False,
    email: Annotated[str | None, typer.Option(help="Whose tokens, with --all.")] = None,
) -> None:
    """Make a token unusable now (or, with --all --email E, every token of a person)."""
    one = token_id is not None and not all_tokens and email is None
    everything = token_id is None and all_tokens and email is not None
    if not (one or everything):
        raise fail("name one token (`cohortsync tokens revoke ID`) or use --all --email E")
    with migrated_engine() as engine:
        if token_id is not None:
            _accounts(engine).revoke(token_id)
            out.print(f"token {token_id} is revoked")
        elif email is not None:
            revoked = _accounts(engine).revoke_all(email)
            out.print(f"{revoked} token(s) of {email.strip().lower()} revoked")
