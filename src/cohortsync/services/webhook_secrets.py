"""The per-integration secret partners prove their webhook calls with (R-EVT-2).

A secret is made when a partner integration is connected and shown once, in that answer; it is
kept sealed with the keyring (HMAC needs it in the clear, so it cannot be only a hash). Rotating
makes a new one, shown once; the previous one keeps working for ``overlap`` so the partner's
settings can be changed without losing calls.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.clock import as_utc
from cohortsync.keyring import Keyring
from cohortsync.storage.tables import webhook_secrets

PREFIX = "cswh_"
DEFAULT_OVERLAP = timedelta(hours=24)


def new_secret() -> str:
    """A long random secret (256 bits), recognisable by its prefix in a partner's settings."""
    return PREFIX + secrets.token_urlsafe(32)


def issue(connection: Connection, keyring: Keyring, integration_id: int, now: datetime) -> str:
    """Make the integration's first secret and return it (the only time it is shown)."""
    secret = new_secret()
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
) -> tuple[str, datetime | None]:
    """A new secret for the integration; the current one stays valid until the returned time."""
    row = connection.execute(
        sa.select(webhook_secrets.c.sealed).where(
            webhook_secrets.c.integration_id == integration_id
        )
    ).first()
    secret = new_secret()
    if row is None:
        connection.execute(
            webhook_secrets.insert().values(
                integration_id=integration_id,
                sealed=keyring.seal({"current": secret}),
                previous_until=None,
                rotated_at=now,
            )
        )
        return secret, None
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


def valid_secrets(
    connection: Connection, keyring: Keyring, integration_id: int, now: datetime
) -> list[str]:
    """The secrets a call may prove today: the current one, and the previous one during the
    overlap after a rotation (none when the integration has no secret)."""
    row = connection.execute(
        sa.select(webhook_secrets.c.sealed, webhook_secrets.c.previous_until).where(
            webhook_secrets.c.integration_id == integration_id
        )
    ).first()
    if row is None:
        return []
    document = keyring.open(row.sealed)
    found = [document["current"]]
    if (
        "previous" in document
        and row.previous_until is not None
        and now < as_utc(row.previous_until)
    ):
        found.append(document["previous"])
    return found


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
