"""Throttled sign-in: failures counted per account and per address (in the database, shared by
every process), locks that look the same whether or not the email belongs to anyone."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from cohortsync.domain.accounts import SignInLimits, TooManySignIns
from cohortsync.storage.audit_store import AuditStore
from cohortsync.storage.sign_in_store import SignInStore


def address_key(address: str | None) -> str | None:
    """The key an address's failures are counted under: the IPv4 address, or the /64 an IPv6
    address belongs to (one host usually holds a whole /64); None when there is no address."""
    if not address:
        return None
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return f"address:{address[:200]}"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return f"address:{parsed.ipv4_mapped}"
        return f"address:{ipaddress.IPv6Network((parsed, 64), strict=False)}"
    return f"address:{parsed}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at signing in: the (folded) email and the address it came from."""

    email: str
    address: str | None

    @property
    def account_key(self) -> str:
        """Where the account's failures are counted (whether or not the account exists): a
        digest of the email, so what was typed (a password, by mistake) is not kept."""
        return "email:" + hashlib.sha256(self.email.encode()).hexdigest()

    @property
    def keys(self) -> list[str]:
        """Every key this attempt is counted under."""
        address = address_key(self.address)
        return [self.account_key] + ([address] if address else [])

    @property
    def detail(self) -> dict[str, str | None]:
        """What the audit log keeps of the attempt of a known person (never the password)."""
        return {"email": self.email, "address": self.address}

    @property
    def stranger_detail(self) -> dict[str, str | None]:
        """What the audit log keeps of an attempt naming no account: the email masked but for
        its first character and domain, since people type passwords into the email field."""
        return {"email": masked_email(self.email), "address": self.address}


def masked_email(typed: str) -> str:
    """``j***@example.com`` for ``jane@example.com``; text that is no email address at all
    is not kept."""
    local, at, domain = typed.rpartition("@")
    if not at or not local or not domain or " " in typed or len(typed) > 320:
        return "(not an email address)"
    return f"{local[0]}***@{domain}"


class SignInThrottle:
    """Refuses an account or address with too many recent failures (``limits``), before any
    password is hashed, with the time it may try again."""

    def __init__(self, limits: SignInLimits) -> None:
        self.limits = limits

    def check(self, connection: Connection, attempt: Attempt, now: datetime) -> None:
        """Raise :class:`TooManySignIns` while the account or the address is locked."""
        until = SignInStore(connection).locked_until(attempt.keys, now)
        if until is not None:
            raise TooManySignIns(_refusal(until, now), (until - now).total_seconds())

    def failed(
        self,
        connection: Connection,
        attempt: Attempt,
        now: datetime,
        reason: str,
        user_id: int | None,
    ) -> None:
        """Count a failure against the account and the address, and audit it (with the lock
        it caused, if it did)."""
        store = SignInStore(connection)
        window = self.limits.window
        store.forget_before(now - window, now)
        locked = store.count_failure(attempt.account_key, now, window, self.limits.per_account)
        address = address_key(attempt.address)
        if address is not None:
            by_address = store.count_failure(address, now, window, self.limits.per_address)
            locked = max(filter(None, (locked, by_address)), default=None)
        known = attempt.detail if user_id is not None else attempt.stranger_detail
        detail: dict[str, str | None] = {**known, "reason": reason}
        if locked is not None:
            detail["locked_until"] = locked.isoformat()
        AuditStore(connection).record(
            project_id=None,
            user_id=None,  # nobody proved who they are; the email tried is in the detail
            action="sign_in.failed",
            target=f"user:{user_id}" if user_id is not None else "unknown email",
            detail=detail,
            at=now,
        )

    def succeeded(
        self, connection: Connection, attempt: Attempt, now: datetime, user_id: int
    ) -> None:
        """Clear the account's failures (not the address's) and audit the sign-in."""
        SignInStore(connection).clear(attempt.account_key)
        AuditStore(connection).record(
            project_id=None,
            user_id=user_id,
            action="sign_in.succeeded",
            target=f"user:{user_id}",
            detail=attempt.detail,
            at=now,
        )


def _refusal(until: datetime, now: datetime) -> str:
    minutes = max(1, round((until - now).total_seconds() / 60))
    return (
        "too many failed sign-ins for this account or from this address; "
        f"try again in {minutes} minute{'s' if minutes != 1 else ''}"
    )
