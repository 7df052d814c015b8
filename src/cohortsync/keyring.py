"""Encryption at rest of partner credentials (R-INT-4): Fernet keys, newest first.

Keys come from ``COHORTSYNC_SECRET_KEY`` (comma-separated) or from a key file outside the
database, generated on first start. Sealing always uses the newest key; opening tries them all,
so after ``cohortsync keys rotate`` (a new key first, every sealed value re-sealed with it) the
old keys can be retired.

A keyring read from the key file follows it while the service runs: before sealing, and when a
value does not open, it compares the file's identity (inode, size, modification and change
times: one ``stat``) with what it last read and reads the keys again if the file was replaced.
So a running process seals with the key a rotation just added, never with a retired one, and
opens values a rotation re-sealed with it. Keys from the environment cannot change under a
running process: rotating them needs a restart (see ``cohortsync keys rotate``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import orjson
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from cohortsync.domain.errors import CohortsyncError
from cohortsync.redaction import register
from cohortsync.settings import Settings

KEY_FILE_NAME = "cohortsync.key"
T = TypeVar("T")
log = logging.getLogger(__name__)


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


def environment_keys(settings: Settings) -> list[str]:
    """The keys of ``COHORTSYNC_SECRET_KEY``, newest first (empty when it is unset)."""
    if settings.secret_key is None:
        return []
    keys = (k.strip() for k in settings.secret_key.get_secret_value().split(","))
    return [k for k in keys if k]


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


FileStamp = tuple[int, int, int, int]


def file_stamp(path: Path) -> FileStamp | None:
    """What identifies one version of a file without reading it (None: there is no file)."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return (found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


def _fernets(keys: Sequence[str]) -> list[Fernet]:
    if not keys:
        raise KeyringError("no encryption key configured")
    try:
        return [Fernet(k.encode()) for k in keys]
    except ValueError:
        raise KeyringError(
            "an encryption key is malformed: each must be 32 url-safe base64-encoded bytes "
            "(make one with `cohortsync keys generate`)"
        ) from None


@dataclass(frozen=True)
class _Keys:
    """One reading of the keys: all of them (to open), the newest (to seal), and the version of
    the key file they were read from."""

    all: MultiFernet
    newest: Fernet
    count: int
    stamp: FileStamp | None = None

    @classmethod
    def of(cls, keys: Sequence[str], stamp: FileStamp | None = None) -> _Keys:
        fernets = _fernets(keys)
        return cls(MultiFernet(fernets), fernets[0], len(fernets), stamp)


class Keyring:
    """Seals and opens credential documents with a list of Fernet keys, newest first; a keyring
    of a key file reads the file again when it changes (thread-safe)."""

    def __init__(
        self,
        keys: Sequence[str],
        *,
        key_file: Path | None = None,
        stamp: FileStamp | None = None,
    ) -> None:
        """``keys`` newest first; with ``key_file``, the file they were read from when it was
        at version ``stamp`` (None: the file is read again at first use)."""
        self._keys = _Keys.of(keys, stamp)
        self._key_file = key_file
        self._unusable: FileStamp | None = None  # a version of the file that could not be used
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        """The keys of a key file, followed as it changes."""
        stamp = file_stamp(path)  # before reading: a change in between is read next time
        return cls(read_key_file(path), key_file=path, stamp=stamp)

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        """The keys of the environment, else of the key file (created with a new key)."""
        if settings.secret_key is not None:
            return cls(environment_keys(settings))
        path = key_file_path(settings)
        if not path.exists():
            write_key_file(path, [generate_key()])
        return cls.from_file(path)

    @property
    def key_count(self) -> int:
        """How many keys open values (the newest also seals)."""
        return self._current().count

    def _current(self) -> _Keys:
        """The keys, read again first when the key file was replaced since the last reading. A
        file that cannot be read or holds a malformed key keeps the keys in memory (an error is
        logged once for that version of the file)."""
        keys, path = self._keys, self._key_file
        if path is None:
            return keys
        stamp = file_stamp(path)
        if stamp is None or stamp in (keys.stamp, self._unusable):
            return keys
        with self._lock:
            if stamp not in (self._keys.stamp, self._unusable):
                try:
                    fresh = _Keys.of(read_key_file(path), stamp)
                except (OSError, UnicodeError, KeyringError) as error:
                    self._unusable = stamp
                    reason = error.message if isinstance(error, KeyringError) else str(error)
                    log.error("the key file %s changed but cannot be used: %s", path, reason)
                    return self._keys
                log.info("encryption keys read again from %s (%d keys)", path, fresh.count)
                self._keys = fresh
            return self._keys

    def _with_keys(self, use: Callable[[_Keys], T]) -> T:
        """``use`` the keys; when no key opens the value, once more with the key file read
        again (a rotation in another process added the key that sealed it)."""
        keys = self._current()
        try:
            return use(keys)
        except InvalidToken:
            fresh = self._current()
            if fresh is keys:
                raise
            return use(fresh)

    def seal(self, document: Mapping[str, str]) -> str:
        """Encrypt a credentials document with the newest key."""
        return self._current().newest.encrypt(orjson.dumps(dict(document))).decode()

    def open(self, sealed: str) -> dict[str, str]:
        """Decrypt a sealed document; its values are registered for redaction."""
        with _opening():
            plain = self._with_keys(lambda keys: keys.all.decrypt(sealed.encode()))
        document: dict[str, str] = orjson.loads(plain)
        register(v for v in document.values() if isinstance(v, str))
        return document

    def reseal(self, sealed: str) -> str:
        """The same document sealed with the newest key."""
        with _opening():
            return self._with_keys(lambda keys: keys.all.rotate(sealed.encode())).decode()

    def sealed_with_newest(self, sealed: str) -> bool:
        """Whether the newest key alone opens ``sealed`` (False: an older key sealed it)."""
        try:
            self._current().newest.decrypt(sealed.encode())
        except InvalidToken:
            return False
        return True
