"""Stored people: their password hashes, their role per project, and their bearer tokens."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.clock import as_utc
from cohortsync.domain.accounts import Role, User
from cohortsync.storage.tables import api_tokens, memberships, users


class UserStore:
    """The people of the database, read and written in the caller's transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def id_by_email(self, email: str) -> int | None:
        """The id of the person whose (lower-cased) email is ``email``."""
        found = self._connection.execute(
            sa.select(users.c.id).where(users.c.email == email)
        ).scalar()
        return None if found is None else int(found)

    def password_hash(self, email: str) -> tuple[int, str] | None:
        """(id, password hash) of the person whose (lower-cased) email is ``email``."""
        row = self._connection.execute(
            sa.select(users.c.id, users.c.password_hash).where(users.c.email == email)
        ).first()
        return None if row is None else (int(row.id), str(row.password_hash))

    def insert(self, email: str, password_hash: str, now: datetime) -> int:
        """Store a new person made at ``now``; their id."""
        user_id = self._connection.execute(
            users.insert()
            .values(email=email, password_hash=password_hash, created_at=now)
            .returning(users.c.id)
        ).scalar_one()
        return int(user_id)

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        """Store a person's new password hash."""
        self._connection.execute(
            users.update().where(users.c.id == user_id).values(password_hash=password_hash)
        )

    def set_role(self, user_id: int, project_id: int, role: Role) -> None:
        """Give the person ``role`` in the project (replacing any role they had there)."""
        self._connection.execute(
            memberships.delete().where(
                memberships.c.user_id == user_id, memberships.c.project_id == project_id
            )
        )
        self._connection.execute(
            memberships.insert().values(user_id=user_id, project_id=project_id, role=role.value)
        )

    def get(self, user_id: int) -> User:
        """A user with their roles."""
        row = self._connection.execute(
            sa.select(users.c.id, users.c.email).where(users.c.id == user_id)
        ).one()
        roles = {
            r.project_id: Role(r.role)
            for r in self._connection.execute(
                sa.select(memberships.c.project_id, memberships.c.role).where(
                    memberships.c.user_id == user_id
                )
            )
        }
        return User(row.id, row.email, roles)

    def count(self) -> int:
        """How many people can sign in."""
        counted = sa.select(sa.func.count()).select_from(users)
        return int(self._connection.execute(counted).scalar_one())

    def insert_token(self, user_id: int, token_hash: str, name: str, now: datetime) -> None:
        """Store a bearer token (its hash) of the person, made at ``now``."""
        self._connection.execute(
            api_tokens.insert().values(
                user_id=user_id, token_hash=token_hash, name=name, created_at=now
            )
        )

    def token(self, token_hash: str) -> tuple[int, str, datetime] | None:
        """(user id, token name, made at) of the token whose hash is ``token_hash``."""
        row = self._connection.execute(
            sa.select(api_tokens.c.user_id, api_tokens.c.name, api_tokens.c.created_at).where(
                api_tokens.c.token_hash == token_hash
            )
        ).first()
        return None if row is None else (int(row.user_id), str(row.name), as_utc(row.created_at))

    def delete_token(self, token_hash: str) -> None:
        """Forget the token whose hash is ``token_hash``."""
        self._connection.execute(api_tokens.delete().where(api_tokens.c.token_hash == token_hash))

    def delete_tokens_made_by(self, user_id: int, name: str, until: datetime) -> None:
        """Forget the person's tokens named ``name`` made at or before ``until``."""
        self._connection.execute(
            api_tokens.delete().where(
                api_tokens.c.user_id == user_id,
                api_tokens.c.name == name,
                api_tokens.c.created_at <= until,
            )
        )
