"""The per-integration secret partners prove their webhook calls with (R-EVT-2).

A secret is made when a partner integration is connected and shown once, in that answer; it is
kept sealed with the keyring (HMAC needs it in the clear, so it cannot be only a hash). Rotating
makes a new one, shown once; the previous one keeps working for ``overlap`` so the partner's
settings can be changed without losing calls.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.clock import as_utc
from cohortsync.domain.errors import BatchError
from cohortsync.keyring import Keyring
from cohortsync.storage.tables import webhook_secrets

PREFIX = "cswh_"
DEFAULT_OVERLAP = timedelta(hours=24)


def new_secret() -> str:
    """A long random secret (256 bits), recognisable by its prefix in a partner's settings."""
    return PREFIX + secrets.token_urlsafe(32)


def partner_key(value: str) -> str:
    """A signing key the partner made (Xtremepush's "Webhook Secret Key"), checked; the
    BatchError says what is wrong with it."""
    key = value.strip()
    if not 16 <= len(key) <= 512 or any(c.isspace() or not c.isprintable() for c in key):
        raise BatchError(
            "the partner's key must be 16-512 printable characters without spaces; copy it "
            "from the partner's webhook settings"
        )
    return key


def issue(
    connection: Connection,
    keyring: Keyring,
    integration_id: int,
    now: datetime,
    secret: str | None = None,
) -> str:
    """Make the integration's first secret (``secret`` when the partner made it) and return it
    (the only time it is shown)."""
    secret = secret if secret is not None else new_secret()
    connection.execute(
        webhook_secrets.insert().values(
            integration_id=integration_id,
            sealed=keyring.seal({"current": secret}),
            previous_until=None,
            rotated_at=now,
        )
    )
    return secret


def rotate(
    connection: Connection,
    keyring: Keyring,
    integration_id: int,
    now: datetime,
    overlap: timedelta = DEFAULT_OVERLAP,
    secret: str | None = None,
) -> tuple[str, datetime | None]:
    """A new secret for the integration (``secret`` when the partner made it, else a random
    one); the current one stays valid until the returned time."""
    row = connection.execute(
        sa.select(webhook_secrets.c.sealed).where(
            webhook_secrets.c.integration_id == integration_id
        )
    ).first()
    if row is None:
        return issue(connection, keyring, integration_id, now, secret), None
    secret = secret if secret is not None else new_secret()
    previous = keyring.open(row.sealed)["current"]
    until = now + overlap
    connection.execute(
        webhook_secrets.update()
        .where(webhook_secrets.c.integration_id == integration_id)
        .values(
            sealed=keyring.seal({"current": secret, "previous": previous}),
            previous_until=until,
            rotated_at=now,
        )
    )
    return secret, until


@dataclass(frozen=True)
class StoredSecrets:
    """An integration's secrets as stored: the current one, and the previous one until the
    overlap after a rotation ends."""

    current: str
    previous: str | None = None
    previous_until: datetime | None = None

    def valid(self, now: datetime) -> tuple[str, ...]:
        """The secrets a call may prove at ``now``."""
        overlapping = self.previous_until is not None and now < self.previous_until
        if self.previous is not None and overlapping:
            return (self.current, self.previous)
        return (self.current,)


def load(connection: Connection, keyring: Keyring, integration_id: int) -> StoredSecrets | None:
    """The integration's secrets (None when it has none)."""
    row = connection.execute(
        sa.select(webhook_secrets.c.sealed, webhook_secrets.c.previous_until).where(
            webhook_secrets.c.integration_id == integration_id
        )
    ).first()
    if row is None:
        return None
    document = keyring.open(row.sealed)
    until = as_utc(row.previous_until) if row.previous_until is not None else None
    return StoredSecrets(document["current"], document.get("previous"), until)


def forget(connection: Connection, integration_id: int) -> None:
    """Drop the integration's secrets (it was disconnected): its calls are refused from now."""
    connection.execute(
        webhook_secrets.delete().where(webhook_secrets.c.integration_id == integration_id)
    )


def reseal(connection: Connection, keyring: Keyring) -> int:
    """Re-encrypt every webhook secret with the keyring's newest key."""
    rows = connection.execute(sa.select(webhook_secrets.c.integration_id, webhook_secrets.c.sealed))
    done = 0
    for row in rows.all():
        connection.execute(
            webhook_secrets.update()
            .where(webhook_secrets.c.integration_id == row.integration_id)
            .values(sealed=keyring.reseal(row.sealed))
        )
        done += 1
    return done
