"""Rotating the keys that seal partner credentials (R-INT-4), safe while the service runs.

With a key file, the new key is written into the file first, before anything is sealed with
it: every running process reads the file again before it seals and when a value does not open
(see :mod:`cohortsync.keyring`), so from that moment it seals with the new key and opens what
the rotation re-seals. Then every sealed value is re-sealed and read back: a value a running
process sealed with an older key while the pass ran (it had looked at the file just before the
new key arrived) is re-sealed by another pass. Older keys leave the file only when no stored
value needs them any more.

Keys from ``COHORTSYNC_SECRET_KEY`` cannot change under a running process: the new key must be
put first there and every process restarted before values are re-sealed with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy.engine import Engine

from cohortsync.clock import Clock
from cohortsync.domain.audit import CLI_ACTOR
from cohortsync.domain.errors import Conflict
from cohortsync.keyring import Keyring, generate_key, read_key_file, write_key_file
from cohortsync.services.audit import AuditLog
from cohortsync.services.integrations import reseal_all
from cohortsync.storage.database import read_transaction
from cohortsync.storage.integration_store import IntegrationStore

MAX_PASSES = 5  # re-sealing passes before values still sealed with an older key are reported

ENVIRONMENT_PROCEDURE = (
    "keys from COHORTSYNC_SECRET_KEY cannot change under a running server: (1) put a new key "
    "(`cohortsync keys generate`) first in COHORTSYNC_SECRET_KEY, keeping the current ones "
    "after it, for every cohortsync process; (2) restart them all; (3) run `cohortsync keys "
    "rotate --restarted`; (4) remove the older keys and restart again. A key file "
    "(COHORTSYNC_SECRET_KEY_FILE, with COHORTSYNC_SECRET_KEY unset) rotates without restarts"
)


@dataclass(frozen=True)
class Rotation:
    """What a rotation did: integrations re-sealed, older keys still kept (0 once retired), and
    values still sealed with an older key (a process that does not read this key file)."""

    resealed: int
    older_keys: int
    stale: int
    key_file: Path | None = None


def stale_values(engine: Engine, keyring: Keyring) -> int:
    """Stored credentials and webhook secrets the keyring's newest key did not seal."""
    with read_transaction(engine) as connection:
        store = IntegrationStore(connection)
        sealed = [s for _, s in store.all_sealed_credentials()]
        sealed += [s for _, s in store.all_sealed_webhook_secrets()]
    return sum(not keyring.sealed_with_newest(s) for s in sealed)


class KeyRotation:
    """Re-sealing every stored secret with a new key, and retiring the older keys, audited."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._audit = AuditLog(engine, clock)

    def _reseal(self, keyring: Keyring) -> tuple[int, int]:
        """Re-seal everything until nothing is left sealed with an older key (at most
        MAX_PASSES); (integrations re-sealed, values still sealed with an older key)."""
        resealed = reseal_all(self._engine, keyring)
        for _ in range(MAX_PASSES - 1):
            stale = stale_values(self._engine, keyring)
            if not stale:
                return resealed, 0
            reseal_all(self._engine, keyring)
        return resealed, stale_values(self._engine, keyring)

    def rotate_file(self, path: Path, *, retire_old: bool = False) -> Rotation:
        """Put a new key first in the key file, re-seal everything with it, and with
        ``retire_old`` drop the older keys (only once nothing needs them: see :meth:`retire`)."""
        older = read_key_file(path) if path.exists() else []
        keys = [generate_key(), *older]
        write_key_file(path, keys)  # running processes seal with the new key from now on
        resealed, stale = self._reseal(Keyring(keys))
        rotation = Rotation(resealed, len(older), stale, path)
        self._record("keys.rotate", rotation)
        if retire_old:
            self.retire(path)
            rotation = replace(rotation, older_keys=0)
        return rotation

    def retire(self, path: Path) -> Rotation:
        """Re-seal what an older key still seals, then keep only the newest key in the file;
        Conflict (the file unchanged) while some value still needs an older key."""
        keys = read_key_file(path)
        keyring = Keyring(keys)
        resealed, stale = self._reseal(keyring) if stale_values(self._engine, keyring) else (0, 0)
        if stale:
            raise Conflict(
                f"{stale} stored secrets are still sealed with an older key, so the older keys "
                f"stay in {path}: a process sealing with another key file or with "
                "COHORTSYNC_SECRET_KEY is running; point it at this key file, then run "
                "`cohortsync keys retire`"
            )
        write_key_file(path, keys[:1])
        rotation = Rotation(resealed, 0, 0, path)
        self._record("keys.retire", rotation)
        return rotation

    def reseal_environment(self, keys: Sequence[str]) -> Rotation:
        """Re-seal everything with the first of ``keys`` (COHORTSYNC_SECRET_KEY), once every
        process has been restarted with it."""
        resealed, stale = self._reseal(Keyring(keys))
        rotation = Rotation(resealed, len(keys) - 1, stale)
        self._record("keys.rotate", rotation)
        return rotation

    def _record(self, action: str, rotation: Rotation) -> None:
        where = f"key_file:{rotation.key_file}" if rotation.key_file else "keys:environment"
        self._audit.record(
            action=action,
            target=where,
            detail={
                "resealed_integrations": rotation.resealed,
                "older_keys_kept": rotation.older_keys,
                "still_sealed_with_older_key": rotation.stale,
            },
            actor=CLI_ACTOR,
        )
