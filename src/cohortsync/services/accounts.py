"""Projects, users, API tokens and service accounts: creating them and authenticating with them."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cohortsync.clock import as_utc
from cohortsync.credentials import (
    hash_password,
    hash_secret,
    new_secret,
    secret_matches,
    verify_password,
)
from cohortsync.domain.accounts import Project, Role, User
from cohortsync.domain.errors import AuthenticationError, Conflict, NotFound
from cohortsync.domain.identity import IdentityMode
from cohortsync.storage.database import read_transaction, write_transaction
from cohortsync.storage.tables import (
    api_tokens,
    memberships,
    projects,
    service_accounts,
    users,
)

DEFAULT_PROJECT_NAME = "Default project"
TOKEN_PREFIX = "cst_"
SERVICE_SECRET_PREFIX = "css_"
API_SECRET_PREFIX = "csa_"
# Tokens handed out by signing in (web sessions, POST /api/v1/login) expire; tokens an operator
# makes (`cohortsync tokens create`) are meant for scripts and do not.
LOGIN_TOKEN = "login"
DEFAULT_LOGIN_LIFETIME = timedelta(hours=12)


def _now() -> datetime:
    return datetime.now(UTC)


def _project(row: Any) -> Project:
    return Project(row.id, row.name, row.token, IdentityMode(row.identity_mode))


_PROJECT_COLUMNS = (projects.c.id, projects.c.name, projects.c.token, projects.c.identity_mode)


def create_project(
    connection: Connection, name: str, identity_mode: IdentityMode = IdentityMode.SIMPLIFIED
) -> Project:
    """A new project with a fresh ingestion token (32 hex characters, like Mixpanel's)."""
    token = secrets.token_hex(16)
    project_id = connection.execute(
        projects.insert()
        .values(name=name, token=token, identity_mode=identity_mode.value, created_at=_now())
        .returning(projects.c.id)
    ).scalar_one()
    return Project(int(project_id), name, token, identity_mode)


def ensure_default_project(engine: Engine) -> tuple[Project, bool]:
    """The first project, created on the first start of an empty database; True if created now."""
    with write_transaction(engine) as connection:
        row = connection.execute(sa.select(*_PROJECT_COLUMNS).order_by(projects.c.id)).first()
        if row is not None:
            return _project(row), False
        return create_project(connection, DEFAULT_PROJECT_NAME), True


def list_projects(connection: Connection, ids: list[int] | None = None) -> list[Project]:
    """Projects by id (all when ``ids`` is None)."""
    query = sa.select(*_PROJECT_COLUMNS).order_by(projects.c.id)
    if ids is not None:
        query = query.where(projects.c.id.in_(ids))
    return [_project(r) for r in connection.execute(query)]


def get_project(connection: Connection, project_id: int) -> Project:
    """One project, or NotFound."""
    found = list_projects(connection, [project_id])
    if not found:
        raise NotFound(f"project {project_id} does not exist")
    return found[0]


def project_by_token(connection: Connection, token: str) -> Project | None:
    """The project whose ingestion token is ``token``."""
    row = connection.execute(sa.select(*_PROJECT_COLUMNS).where(projects.c.token == token)).first()
    return _project(row) if row else None


def set_identity_mode(connection: Connection, project_id: int, mode: IdentityMode) -> None:
    """Switch a project between simplified and original ID merge."""
    connection.execute(
        projects.update().where(projects.c.id == project_id).values(identity_mode=mode.value)
    )


def reveal_api_secret(connection: Connection, project_id: int) -> str | None:
    """Create the project's API secret if it has none and return it (shown once); else None."""
    current = connection.execute(
        sa.select(projects.c.api_secret_hash).where(projects.c.id == project_id)
    ).scalar_one()
    if current is not None:
        return None
    return rotate_api_secret(connection, project_id)


def rotate_api_secret(connection: Connection, project_id: int) -> str:
    """Replace the project's API secret; the new one is returned once and stored hashed."""
    secret = new_secret(API_SECRET_PREFIX)
    connection.execute(
        projects.update()
        .where(projects.c.id == project_id)
        .values(api_secret_hash=hash_secret(secret))
    )
    return secret


def project_for_api_secret(connection: Connection, secret: str) -> Project | None:
    """The project whose API secret is ``secret`` (legacy /import authentication)."""
    row = connection.execute(
        sa.select(*_PROJECT_COLUMNS).where(projects.c.api_secret_hash == hash_secret(secret))
    ).first()
    return _project(row) if row else None


def create_service_account(connection: Connection, project_id: int, username: str) -> str:
    """A service account for /import; returns its secret, shown once."""
    get_project(connection, project_id)
    taken = connection.execute(
        sa.select(service_accounts.c.id).where(service_accounts.c.username == username)
    ).first()
    if taken:
        raise Conflict(f"a service account named {username!r} already exists")
    secret = new_secret(SERVICE_SECRET_PREFIX)
    connection.execute(
        service_accounts.insert().values(
            project_id=project_id,
            username=username,
            secret_hash=hash_secret(secret),
            created_at=_now(),
        )
    )
    return secret


def project_for_service_account(
    connection: Connection, username: str, secret: str, project_id: int
) -> Project | None:
    """The project a service account may import into, if the credentials are right."""
    row = connection.execute(
        sa.select(service_accounts.c.project_id, service_accounts.c.secret_hash).where(
            service_accounts.c.username == username
        )
    ).first()
    if row is None or not secret_matches(secret, row.secret_hash) or row.project_id != project_id:
        return None
    return get_project(connection, project_id)


def create_user(
    connection: Connection, email: str, password: str, role: Role, project_id: int
) -> User:
    """A person with a password and a role in one project (added to it if they exist)."""
    if len(password) < 8:
        raise Conflict("a password needs at least 8 characters")
    get_project(connection, project_id)
    email = email.strip().lower()
    row = connection.execute(sa.select(users.c.id).where(users.c.email == email)).first()
    if row is None:
        user_id = connection.execute(
            users.insert()
            .values(email=email, password_hash=hash_password(password), created_at=_now())
            .returning(users.c.id)
        ).scalar_one()
    else:
        user_id = row.id
        connection.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(password_hash=hash_password(password))
        )
    connection.execute(
        memberships.delete().where(
            memberships.c.user_id == user_id, memberships.c.project_id == project_id
        )
    )
    connection.execute(
        memberships.insert().values(user_id=user_id, project_id=project_id, role=role.value)
    )
    return load_user(connection, int(user_id))


def user_by_email(connection: Connection, email: str) -> User | None:
    """The person who signs in with ``email`` (any case), with their roles."""
    found = connection.execute(
        sa.select(users.c.id).where(users.c.email == email.strip().lower())
    ).scalar()
    return None if found is None else load_user(connection, int(found))


def load_user(connection: Connection, user_id: int) -> User:
    """A user with their roles."""
    row = connection.execute(
        sa.select(users.c.id, users.c.email).where(users.c.id == user_id)
    ).one()
    roles = {
        r.project_id: Role(r.role)
        for r in connection.execute(
            sa.select(memberships.c.project_id, memberships.c.role).where(
                memberships.c.user_id == user_id
            )
        )
    }
    return User(row.id, row.email, roles)


def create_token(
    connection: Connection, email: str, name: str = "cli", now: datetime | None = None
) -> str:
    """A new bearer token for the user with ``email``, made at ``now`` (default: the wall
    clock); returned once, stored hashed."""
    row = connection.execute(
        sa.select(users.c.id).where(users.c.email == email.strip().lower())
    ).first()
    if row is None:
        raise NotFound(f"no user with email {email!r}; create one with `cohortsync users create`")
    return _insert_token(connection, row.id, name, now or _now())


def _insert_token(connection: Connection, user_id: int, name: str, now: datetime) -> str:
    token = new_secret(TOKEN_PREFIX)
    connection.execute(
        api_tokens.insert().values(
            user_id=user_id, token_hash=hash_secret(token), name=name, created_at=now
        )
    )
    return token


def login(
    engine: Engine,
    email: str,
    password: str,
    now: datetime | None = None,
    lifetime: timedelta = DEFAULT_LOGIN_LIFETIME,
) -> str:
    """Check a password and hand out a sign-in token, made at ``now`` (it expires after
    ``lifetime``; see :func:`user_for_token`). The person's expired sign-in tokens are deleted."""
    with read_transaction(engine) as connection:
        row = connection.execute(
            sa.select(users.c.id, users.c.password_hash).where(
                users.c.email == email.strip().lower()
            )
        ).first()
    if row is None or not verify_password(password, row.password_hash):
        raise AuthenticationError("email or password is wrong")
    made = now or _now()
    with write_transaction(engine) as connection:
        connection.execute(
            api_tokens.delete().where(
                api_tokens.c.user_id == row.id,
                api_tokens.c.name == LOGIN_TOKEN,
                api_tokens.c.created_at <= made - lifetime,
            )
        )
        return _insert_token(connection, row.id, LOGIN_TOKEN, made)


def revoke_token(connection: Connection, token: str) -> None:
    """Make a bearer token unusable (signing out of the web UI)."""
    connection.execute(api_tokens.delete().where(api_tokens.c.token_hash == hash_secret(token)))


def user_for_token(
    connection: Connection,
    token: str,
    *,
    now: datetime | None = None,
    login_lifetime: timedelta = DEFAULT_LOGIN_LIFETIME,
) -> User | None:
    """The user a bearer token belongs to; None for an unknown token, and for a sign-in token
    (:func:`login`) older than ``login_lifetime`` at ``now`` (default: the wall clock)."""
    row = connection.execute(
        sa.select(api_tokens.c.user_id, api_tokens.c.name, api_tokens.c.created_at).where(
            api_tokens.c.token_hash == hash_secret(token)
        )
    ).first()
    if row is None:
        return None
    if row.name == LOGIN_TOKEN and as_utc(row.created_at) + login_lifetime <= (now or _now()):
        return None
    return load_user(connection, row.user_id)


def count_users(connection: Connection) -> int:
    """How many people can sign in."""
    return int(connection.execute(sa.select(sa.func.count()).select_from(users)).scalar_one())
