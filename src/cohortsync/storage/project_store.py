"""Stored projects and their ingestion credentials: token, API secret, service accounts."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.domain.accounts import Project
from cohortsync.domain.errors import NotFound
from cohortsync.domain.identity import IdentityMode
from cohortsync.storage.tables import projects, service_accounts

_COLUMNS = (projects.c.id, projects.c.name, projects.c.token, projects.c.identity_mode)


def _project(row: Any) -> Project:
    return Project(row.id, row.name, row.token, IdentityMode(row.identity_mode))


class ProjectStore:
    """The projects of the database, read and written in the caller's transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def insert(self, name: str, token: str, identity_mode: IdentityMode, now: datetime) -> Project:
        """Store a new project made at ``now``."""
        project_id = self._connection.execute(
            projects.insert()
            .values(name=name, token=token, identity_mode=identity_mode.value, created_at=now)
            .returning(projects.c.id)
        ).scalar_one()
        return Project(int(project_id), name, token, identity_mode)

    def first(self) -> Project | None:
        """The project made first, if any."""
        row = self._connection.execute(sa.select(*_COLUMNS).order_by(projects.c.id)).first()
        return _project(row) if row is not None else None

    def list(self, ids: builtins.list[int] | None = None) -> builtins.list[Project]:
        """Projects by id (all when ``ids`` is None)."""
        query = sa.select(*_COLUMNS).order_by(projects.c.id)
        if ids is not None:
            query = query.where(projects.c.id.in_(ids))
        return [_project(r) for r in self._connection.execute(query)]

    def get(self, project_id: int) -> Project:
        """One project, or NotFound."""
        found = self.list([project_id])
        if not found:
            raise NotFound(f"project {project_id} does not exist")
        return found[0]

    def by_token(self, token: str) -> Project | None:
        """The project whose ingestion token is ``token``."""
        row = self._connection.execute(
            sa.select(*_COLUMNS).where(projects.c.token == token)
        ).first()
        return _project(row) if row else None

    def set_identity_mode(self, project_id: int, mode: IdentityMode) -> None:
        """Store the project's ID merge mode."""
        self._connection.execute(
            projects.update().where(projects.c.id == project_id).values(identity_mode=mode.value)
        )

    def api_secret_hash(self, project_id: int) -> str | None:
        """The hash of the project's API secret, None while it has none."""
        found: str | None = self._connection.execute(
            sa.select(projects.c.api_secret_hash).where(projects.c.id == project_id)
        ).scalar_one()
        return found

    def set_api_secret_hash(self, project_id: int, secret_hash: str) -> None:
        """Store the hash of the project's new API secret."""
        self._connection.execute(
            projects.update().where(projects.c.id == project_id).values(api_secret_hash=secret_hash)
        )

    def by_api_secret_hash(self, secret_hash: str) -> Project | None:
        """The project whose API secret hashes to ``secret_hash``."""
        row = self._connection.execute(
            sa.select(*_COLUMNS).where(projects.c.api_secret_hash == secret_hash)
        ).first()
        return _project(row) if row else None

    def service_account_exists(self, username: str) -> bool:
        """Whether a service account of that name exists (names are unique across projects)."""
        row = self._connection.execute(
            sa.select(service_accounts.c.id).where(service_accounts.c.username == username)
        ).first()
        return row is not None

    def insert_service_account(
        self, project_id: int, username: str, secret_hash: str, now: datetime
    ) -> None:
        """Store a service account of the project."""
        self._connection.execute(
            service_accounts.insert().values(
                project_id=project_id, username=username, secret_hash=secret_hash, created_at=now
            )
        )

    def service_account(self, username: str) -> tuple[int, str] | None:
        """(project id, secret hash) of the service account named ``username``."""
        row = self._connection.execute(
            sa.select(service_accounts.c.project_id, service_accounts.c.secret_hash).where(
                service_accounts.c.username == username
            )
        ).first()
        return None if row is None else (int(row.project_id), str(row.secret_hash))
