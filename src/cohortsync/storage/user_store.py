"""Stored people: their password hashes, their role per project, and whether they are
disabled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.clock import as_utc
from cohortsync.domain.accounts import Person, Role, User
from cohortsync.storage.tables import api_tokens, memberships, users


@dataclass(frozen=True, slots=True)
class StoredPassword:
    """What signing in needs to know about the person with an email."""

    user_id: int
    password_hash: str
    disabled: bool


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

    def password(self, email: str) -> StoredPassword | None:
        """The password hash of the person whose (lower-cased) email is ``email``."""
        row = self._connection.execute(
            sa.select(users.c.id, users.c.password_hash, users.c.disabled_at).where(
                users.c.email == email
            )
        ).first()
        if row is None:
            return None
        return StoredPassword(int(row.id), str(row.password_hash), row.disabled_at is not None)

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

    def replace_password_hash(self, user_id: int, old: str, new: str) -> None:
        """Store ``new`` only while the stored hash is still ``old`` (a rehash on sign-in must
        not undo a password change made meanwhile)."""
        self._connection.execute(
            users.update()
            .where(users.c.id == user_id, users.c.password_hash == old)
            .values(password_hash=new)
        )

    def set_disabled(self, user_id: int, at: datetime | None) -> None:
        """Disable the person from ``at`` on, or enable them again (``at`` None)."""
        self._connection.execute(users.update().where(users.c.id == user_id).values(disabled_at=at))

    def delete(self, user_id: int) -> None:
        """Forget the person, their roles and their tokens."""
        self._connection.execute(api_tokens.delete().where(api_tokens.c.user_id == user_id))
        self._connection.execute(memberships.delete().where(memberships.c.user_id == user_id))
        self._connection.execute(users.delete().where(users.c.id == user_id))

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

    def _roles(self, user_ids: list[int]) -> dict[int, dict[int, Role]]:
        found: dict[int, dict[int, Role]] = {user_id: {} for user_id in user_ids}
        rows = self._connection.execute(
            sa.select(memberships.c.user_id, memberships.c.project_id, memberships.c.role).where(
                memberships.c.user_id.in_(user_ids)
            )
        )
        for row in rows:
            found[int(row.user_id)][int(row.project_id)] = Role(row.role)
        return found

    def get(self, user_id: int) -> User:
        """A user with their roles."""
        row = self._connection.execute(
            sa.select(users.c.id, users.c.email).where(users.c.id == user_id)
        ).one()
        return User(row.id, row.email, self._roles([user_id])[user_id])

    def people(self) -> list[Person]:
        """Everyone, by email, with their roles."""
        rows = self._connection.execute(
            sa.select(users.c.id, users.c.email, users.c.created_at, users.c.disabled_at).order_by(
                users.c.email
            )
        ).all()
        roles = self._roles([int(row.id) for row in rows])
        return [
            Person(
                int(row.id),
                str(row.email),
                as_utc(row.created_at),
                None if row.disabled_at is None else as_utc(row.disabled_at),
                roles[int(row.id)],
            )
            for row in rows
        ]

    def active_admins(self, project_id: int) -> set[int]:
        """The ids of the project's admins who are not disabled."""
        rows = self._connection.execute(
            sa.select(memberships.c.user_id)
            .join(users, users.c.id == memberships.c.user_id)
            .where(
                memberships.c.project_id == project_id,
                memberships.c.role == Role.ADMIN.value,
                users.c.disabled_at.is_(None),
            )
        )
        return {int(row.user_id) for row in rows}

    def count(self) -> int:
        """How many people can sign in."""
        counted = sa.select(sa.func.count()).select_from(users)
        return int(self._connection.execute(counted).scalar_one())
