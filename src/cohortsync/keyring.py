"""Encryption at rest of partner credentials (R-INT-4): Fernet keys, newest first.

Keys come from ``COHORTSYNC_SECRET_KEY`` (comma-separated) or from a key file outside the
database, generated on first start. Sealing always uses the newest key; opening tries them all,
so after ``cohortsync keys rotate`` (a new key first, every sealed value re-sealed with it) the
old keys can be retired.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import orjson
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from cohortsync.domain.errors import CohortsyncError
from cohortsync.redaction import register
from cohortsync.settings import Settings

KEY_FILE_NAME = "cohortsync.key"


class KeyringError(CohortsyncError):
    """The configured keys cannot open a sealed value (a key was lost or retired too early)."""

    code = "keyring_error"


def generate_key() -> str:
    """A new random Fernet key."""
    return Fernet.generate_key().decode()


def key_file_path(settings: Settings) -> Path:
    """Where the key file lives: the setting, else beside the SQLite database, else here."""
    if settings.secret_key_file:
        return Path(settings.secret_key_file)
    url = sa.engine.make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent / KEY_FILE_NAME
    return Path(KEY_FILE_NAME).resolve()


def read_key_file(path: Path) -> list[str]:
    """The keys in a key file, one a line, newest first."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def write_key_file(path: Path, keys: Sequence[str]) -> None:
    """Write keys (newest first), readable by the owner only, replacing the file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("\n".join(keys) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


@contextmanager
def _opening() -> Iterator[None]:
    """A value no configured key opens becomes a KeyringError that says what to do."""
    try:
        yield
    except InvalidToken:
        raise KeyringError(
            "stored credentials cannot be decrypted with the configured keys; restore the "
            "key that sealed them (COHORTSYNC_SECRET_KEY or the key file)"
        ) from None


class Keyring:
    """Seals and opens credential documents with a list of Fernet keys, newest first."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise KeyringError("no encryption key configured")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except ValueError:
            raise KeyringError(
                "an encryption key is malformed: each must be 32 url-safe base64-encoded bytes "
                "(make one with `cohortsync keys generate`)"
            ) from None
        self.key_count = len(keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        """The keys of the environment, else of the key file (created with a new key)."""
        if settings.secret_key is not None:
            keys = [k.strip() for k in settings.secret_key.get_secret_value().split(",")]
            return cls([k for k in keys if k])
        path = key_file_path(settings)
        if not path.exists():
            write_key_file(path, [generate_key()])
        return cls(read_key_file(path))

    def seal(self, document: Mapping[str, str]) -> str:
        """Encrypt a credentials document with the newest key."""
        return self._fernet.encrypt(orjson.dumps(dict(document))).decode()

    def open(self, sealed: str) -> dict[str, str]:
        """Decrypt a sealed document; its values are registered for redaction."""
        with _opening():
            document: dict[str, str] = orjson.loads(self._fernet.decrypt(sealed.encode()))
        register(v for v in document.values() if isinstance(v, str))
        return document

    def reseal(self, sealed: str) -> str:
        """The same document sealed with the newest key."""
        with _opening():
            return self._fernet.rotate(sealed.encode()).decode()
