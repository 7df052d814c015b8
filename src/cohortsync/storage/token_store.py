"""Stored bearer tokens (only their SHA-256), who they belong to and when they expire."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.clock import as_utc
from cohortsync.domain.accounts import TokenListing
from cohortsync.storage.tables import api_tokens, users


@dataclass(frozen=True, slots=True)
class StoredToken:
    """What deciding whether a presented token still works needs."""

    user_id: int
    name: str
    created_at: datetime
    expires_at: datetime | None
    owner_disabled: bool


def _maybe_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


class TokenStore:
    """The bearer tokens of the database, read and written in the caller's transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def insert(
        self,
        user_id: int,
        token_hash: str,
        name: str,
        now: datetime,
        expires_at: datetime | None = None,
    ) -> int:
        """Store a token (its hash) of the person, made at ``now``; its id."""
        token_id = self._connection.execute(
            api_tokens.insert()
            .values(
                user_id=user_id,
                token_hash=token_hash,
                name=name,
                created_at=now,
                expires_at=expires_at,
            )
            .returning(api_tokens.c.id)
        ).scalar_one()
        return int(token_id)

    def find(self, token_hash: str) -> StoredToken | None:
        """The token whose hash is ``token_hash``, with whether its owner is disabled."""
        row = self._connection.execute(
            sa.select(
                api_tokens.c.user_id,
                api_tokens.c.name,
                api_tokens.c.created_at,
                api_tokens.c.expires_at,
                users.c.disabled_at,
            )
            .join(users, users.c.id == api_tokens.c.user_id)
            .where(api_tokens.c.token_hash == token_hash)
        ).first()
        if row is None:
            return None
        return StoredToken(
            int(row.user_id),
            str(row.name),
            as_utc(row.created_at),
            _maybe_utc(row.expires_at),
            row.disabled_at is not None,
        )

    def listing(self, user_id: int | None = None) -> list[TokenListing]:
        """Every token (or the person's), oldest first; never the token."""
        query = (
            sa.select(
                api_tokens.c.id,
                api_tokens.c.name,
                users.c.email,
                api_tokens.c.created_at,
                api_tokens.c.expires_at,
            )
            .join(users, users.c.id == api_tokens.c.user_id)
            .order_by(api_tokens.c.id)
        )
        if user_id is not None:
            query = query.where(api_tokens.c.user_id == user_id)
        return [
            TokenListing(
                int(row.id),
                str(row.name),
                str(row.email),
                as_utc(row.created_at),
                _maybe_utc(row.expires_at),
            )
            for row in self._connection.execute(query)
        ]

    def owner(self, token_id: int) -> int | None:
        """The id of the person token ``token_id`` belongs to (None: no such token)."""
        found = self._connection.execute(
            sa.select(api_tokens.c.user_id).where(api_tokens.c.id == token_id)
        ).scalar()
        return None if found is None else int(found)

    def delete(self, token_id: int) -> None:
        """Forget token ``token_id``."""
        self._connection.execute(api_tokens.delete().where(api_tokens.c.id == token_id))

    def delete_by_hash(self, token_hash: str) -> None:
        """Forget the token whose hash is ``token_hash``."""
        self._connection.execute(api_tokens.delete().where(api_tokens.c.token_hash == token_hash))

    def delete_all_of(self, user_id: int) -> int:
        """Forget every token of the person (sessions too); how many there were."""
        deleted = self._connection.execute(
            api_tokens.delete().where(api_tokens.c.user_id == user_id)
        )
        return int(deleted.rowcount)

    def delete_made_by(self, user_id: int, name: str, until: datetime) -> None:
        """Forget the person's tokens named ``name`` made at or before ``until``."""
        self._connection.execute(
            api_tokens.delete().where(
                api_tokens.c.user_id == user_id,
                api_tokens.c.name == name,
                api_tokens.c.created_at <= until,
            )
        )
