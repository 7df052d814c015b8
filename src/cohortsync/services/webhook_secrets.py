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

from sqlalchemy.engine import Connection

from cohortsync.domain.errors import BatchError
from cohortsync.keyring import Keyring
from cohortsync.storage.audit_store import AuditStore
from cohortsync.storage.integration_store import IntegrationStore

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
    sealed = keyring.seal({"current": secret})
    IntegrationStore(connection).save_webhook_secrets(integration_id, sealed, None, now)
    return secret


def rotate(
    connection: Connection,
    keyring: Keyring,
    integration_id: int,
    now: datetime,
    overlap: timedelta = DEFAULT_OVERLAP,
    secret: str | None = None,
    *,
    user_id: int | None = None,
) -> tuple[str, datetime | None]:
    """A new secret for the integration (``secret`` when the partner made it, else a random
    one); the current one stays valid until the returned time. Audited as done by ``user_id``
    (the secrets themselves are never recorded)."""
    store = IntegrationStore(connection)
    stored = store.webhook_secrets(integration_id)
    partner_made = secret is not None
    if stored is None:
        secret = issue(connection, keyring, integration_id, now, secret)
        until = None
    else:
        secret = secret if secret is not None else new_secret()
        previous = keyring.open(stored[0])["current"]
        until = now + overlap
        sealed = keyring.seal({"current": secret, "previous": previous})
        store.save_webhook_secrets(integration_id, sealed, until, now)
    integration = store.find(integration_id)
    AuditStore(connection).record(
        project_id=integration.project_id if integration is not None else None,
        user_id=user_id,
        action="webhook_secret.rotate",
        target=f"integration:{integration_id}",
        detail={
            "partner_key": partner_made,
            "previous_valid_until": until.isoformat() if until is not None else None,
        },
        at=now,
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
    stored = IntegrationStore(connection).webhook_secrets(integration_id)
    if stored is None:
        return None
    document = keyring.open(stored[0])
    return StoredSecrets(document["current"], document.get("previous"), stored[1])


def forget(connection: Connection, integration_id: int) -> None:
    """Drop the integration's secrets (it was disconnected): its calls are refused from now."""
    IntegrationStore(connection).forget_webhook_secrets(integration_id)


def reseal(connection: Connection, keyring: Keyring) -> int:
    """Re-encrypt every webhook secret with the keyring's newest key."""
    store = IntegrationStore(connection)
    done = 0
    for integration_id, sealed in store.all_sealed_webhook_secrets():
        store.reseal_webhook_secrets(integration_id, keyring.reseal(sealed))
        done += 1
    return done
