"""Hashing of passwords (scrypt, parameters kept in the hash, at most a few at once) and of
high-entropy tokens and secrets (SHA-256)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cohortsync.domain.accounts import TooManySignIns

# OWASP's password storage advice for scrypt: N=2^17, r=8, p=1 (128 MiB and ~0.4 s a hash).
DEFAULT_PASSWORD_COST = 17
_R = 8
_P = 1
# Hashes written before the parameters were stored ("scrypt$salt$digest") used N=2^14.
_LEGACY_COST = 14
# What a stored hash may ask for (a corrupt or hostile row must not allocate gigabytes).
_MAX_COST, _MAX_R, _MAX_P = 20, 32, 16
_DIGEST_BYTES = 64


@dataclass(frozen=True, slots=True)
class ScryptParameters:
    """scrypt's work factors: ``n`` = 2**cost, block size ``r``, parallelism ``p``."""

    n: int
    r: int = _R
    p: int = _P

    @classmethod
    def of_cost(cls, cost: int) -> ScryptParameters:
        """OWASP's r and p with N = 2**``cost``."""
        return cls(2**cost)

    @property
    def memory(self) -> int:
        """Bytes one hash needs (OpenSSL's own reckoning, plus room to spare)."""
        return 128 * self.r * (self.n + self.p + 2) + 2**16

    def digest(self, password: str, salt: bytes) -> bytes:
        """The 64-byte scrypt digest of ``password``."""
        return hashlib.scrypt(
            password.encode(),
            salt=salt,
            n=self.n,
            r=self.r,
            p=self.p,
            maxmem=self.memory,
            dklen=_DIGEST_BYTES,
        )


@dataclass(frozen=True, slots=True)
class _Stored:
    parameters: ScryptParameters
    salt: bytes
    digest: bytes


def _parse(stored: str) -> _Stored | None:
    """A stored hash: ``scrypt$n$r$p$salt$digest``, or the old ``scrypt$salt$digest`` (N=2^14);
    None when it is neither, or asks for more than a sane amount of work."""
    parts = stored.split("$")
    try:
        if len(parts) == 3 and parts[0] == "scrypt":
            parameters = ScryptParameters.of_cost(_LEGACY_COST)
        elif len(parts) == 6 and parts[0] == "scrypt":
            n, r, p = (int(part) for part in parts[1:4])
            if (
                n < 2
                or n & (n - 1)
                or n > 2**_MAX_COST
                or not 0 < r <= _MAX_R
                or not 0 < p <= _MAX_P
            ):
                return None
            parameters = ScryptParameters(n, r, p)
        else:
            return None
        salt, digest = base64.b64decode(parts[-2]), base64.b64decode(parts[-1])
    except (ValueError, binascii.Error):
        return None
    return _Stored(parameters, salt, digest) if len(digest) == _DIGEST_BYTES and salt else None


def _encode(parameters: ScryptParameters, salt: bytes, digest: bytes) -> str:
    fields = [str(parameters.n), str(parameters.r), str(parameters.p)]
    encoded = [base64.b64encode(salt).decode(), base64.b64encode(digest).decode()]
    return "$".join(["scrypt", *fields, *encoded])


class HashingSlots:
    """At most ``limit`` password hashes at once in this process (each may take 128 MiB). When
    all are busy a caller waits up to ``wait_seconds``, and only while fewer than ``queue``
    others wait; otherwise :class:`TooManySignIns` (try again in a second)."""

    def __init__(self, limit: int, wait_seconds: float, queue: int | None = None) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._wait = wait_seconds
        self._queue = 4 * limit if queue is None else queue
        self._waiting = 0
        self._lock = threading.Lock()

    def _acquire(self) -> bool:
        if self._slots.acquire(blocking=False):
            return True
        with self._lock:
            if self._waiting >= self._queue:
                return False
            self._waiting += 1
        try:
            return self._slots.acquire(timeout=self._wait)
        finally:
            with self._lock:
                self._waiting -= 1

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot while the body runs."""
        if not self._acquire():
            raise TooManySignIns("the server is busy signing people in; try again shortly", 1)
        try:
            yield
        finally:
            self._slots.release()


class PasswordHasher:
    """scrypt at N = 2**``cost`` (r=8, p=1), the parameters written into each hash so older
    hashes keep verifying and can be upgraded; every hash runs in one of ``slots``."""

    def __init__(self, cost: int = DEFAULT_PASSWORD_COST, slots: HashingSlots | None = None):
        self.parameters = ScryptParameters.of_cost(cost)
        self._slots = slots or HashingSlots(limit=2, wait_seconds=5.0)
        # Checked when the email is unknown, so that costs what a real check does.
        self._dummy = _Stored(self.parameters, secrets.token_bytes(16), bytes(_DIGEST_BYTES))

    def hash(self, password: str) -> str:
        """A salted hash of a person's password."""
        salt = secrets.token_bytes(16)
        with self._slots.slot():
            digest = self.parameters.digest(password, salt)
        return _encode(self.parameters, salt, digest)

    def verify(self, password: str, stored: str | None) -> bool:
        """Whether ``password`` matches ``stored``; with ``stored`` None (nobody has that email)
        the same work is done against a dummy hash and the answer is False."""
        found = None if stored is None else _parse(stored)
        checked = found or self._dummy  # an unreadable hash matches nothing, at the same cost
        with self._slots.slot():
            digest = checked.parameters.digest(password, checked.salt)
        return found is not None and hmac.compare_digest(digest, found.digest)

    def is_current(self, stored: str) -> bool:
        """Whether ``stored`` was made with this hasher's parameters (else: rehash it)."""
        found = _parse(stored)
        return found is not None and found.parameters == self.parameters


def new_secret(prefix: str = "") -> str:
    """A new random secret (256 bits), optionally prefixed to say what it is."""
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """SHA-256 of a random secret; enough for values with 256 bits of entropy."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str | None) -> bool:
    """Constant-time comparison of a presented secret with its stored hash."""
    if not stored_hash:
        return False
    return hmac.compare_digest(hash_secret(secret), stored_hash)
