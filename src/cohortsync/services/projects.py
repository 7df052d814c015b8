"""Projects and their ingestion credentials: the token, the API secret, service accounts."""

from __future__ import annotations

import builtins
import secrets

from sqlalchemy.engine import Connection, Engine

from cohortsync.clock import Clock
from cohortsync.credentials import hash_secret, new_secret, secret_matches
from cohortsync.domain.accounts import Project
from cohortsync.domain.audit import actor_for
from cohortsync.domain.errors import Conflict
from cohortsync.domain.identity import IdentityMode
from cohortsync.storage.audit_store import AuditStore
from cohortsync.storage.database import read_transaction, write_transaction
from cohortsync.storage.project_store import ProjectStore

DEFAULT_PROJECT_NAME = "Default project"
SERVICE_SECRET_PREFIX = "css_"
API_SECRET_PREFIX = "csa_"


def new_project_token() -> str:
    """A fresh ingestion token (32 hex characters, like Mixpanel's)."""
    return secrets.token_hex(16)


def _rotate_secret(store: ProjectStore, project_id: int) -> str:
    """Replace the project's API secret through ``store``; the new one, stored hashed."""
    secret = new_secret(API_SECRET_PREFIX)
    store.set_api_secret_hash(project_id, hash_secret(secret))
    return secret


class ProjectService:
    """Projects, each operation in its own transaction."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def create(self, name: str, identity_mode: IdentityMode = IdentityMode.SIMPLIFIED) -> Project:
        """A new project with a fresh ingestion token."""
        with write_transaction(self._engine) as connection:
            return ProjectStore(connection).insert(
                name, new_project_token(), identity_mode, self._clock.now()
            )

    def ensure_default(self) -> tuple[Project, bool]:
        """The first project, created on the first start of an empty database; True if created
        now."""
        with write_transaction(self._engine) as connection:
            store = ProjectStore(connection)
            found = store.first()
            if found is not None:
                return found, False
            made = store.insert(
                DEFAULT_PROJECT_NAME,
                new_project_token(),
                IdentityMode.SIMPLIFIED,
                self._clock.now(),
            )
            return made, True

    def list(self, ids: builtins.list[int] | None = None) -> builtins.list[Project]:
        """Projects by id (all when ``ids`` is None)."""
        with read_transaction(self._engine) as connection:
            return ProjectStore(connection).list(ids)

    def get(self, project_id: int) -> Project:
        """One project, or NotFound."""
        with read_transaction(self._engine) as connection:
            return ProjectStore(connection).get(project_id)

    def by_token(self, token: str) -> Project | None:
        """The project whose ingestion token is ``token``."""
        with read_transaction(self._engine) as connection:
            return ProjectStore(connection).by_token(token)

    def set_identity_mode(self, project_id: int, mode: IdentityMode) -> None:
        """Switch a project between simplified and original ID merge."""
        with write_transaction(self._engine) as connection:
            ProjectStore(connection).set_identity_mode(project_id, mode)

    def reveal_api_secret(self, project_id: int, *, user_id: int | None = None) -> str | None:
        """Create the project's API secret if it has none and return it (shown once); else
        None."""
        with write_transaction(self._engine) as connection:
            store = ProjectStore(connection)
            if store.api_secret_hash(project_id) is not None:
                return None
            secret = _rotate_secret(store, project_id)
            self._audit(connection, project_id, "project.rotate_secret", user_id, first=True)
            return secret

    def rotate_api_secret(self, project_id: int, *, user_id: int | None = None) -> str:
        """Replace the project's API secret; the new one is returned once and stored hashed."""
        with write_transaction(self._engine) as connection:
            secret = _rotate_secret(ProjectStore(connection), project_id)
            self._audit(connection, project_id, "project.rotate_secret", user_id, first=False)
            return secret

    def create_service_account(
        self, project_id: int, username: str, *, user_id: int | None = None
    ) -> str:
        """A service account for /import; returns its secret, shown once."""
        with write_transaction(self._engine) as connection:
            store = ProjectStore(connection)
            store.get(project_id)
            if store.service_account_exists(username):
                raise Conflict(f"a service account named {username!r} already exists")
            secret = new_secret(SERVICE_SECRET_PREFIX)
            store.insert_service_account(
                project_id, username, hash_secret(secret), self._clock.now()
            )
            self._audit(
                connection, project_id, "service_account.create", user_id, username=username
            )
            return secret

    def _audit(
        self,
        connection: Connection,
        project_id: int,
        action: str,
        user_id: int | None,
        **detail: object,
    ) -> None:
        AuditStore(connection).record(
            project_id=project_id,
            user_id=user_id,
            action=action,
            target=f"project:{project_id}",
            detail=detail,
            at=self._clock.now(),
            actor=actor_for(user_id),
        )

    def for_api_secret(self, secret: str) -> Project | None:
        """The project whose API secret is ``secret`` (legacy /import authentication)."""
        with read_transaction(self._engine) as connection:
            return ProjectStore(connection).by_api_secret_hash(hash_secret(secret))

    def for_service_account(self, username: str, secret: str, project_id: int) -> Project | None:
        """The project a service account may import into, if the credentials are right."""
        with read_transaction(self._engine) as connection:
            store = ProjectStore(connection)
            found = store.service_account(username)
            if found is None or not secret_matches(secret, found[1]) or found[0] != project_id:
                return None
            return store.get(project_id)
