"""What a destination raises when a partner call fails; each class says what the caller does.

DestinationError                 a partner call failed
├── TransientError               try again later (5xx, timeout, connection refused)
│   └── RateLimited              the partner said slow down (429); ``retry_after`` seconds
└── PartnerConfigError           stop: credentials or settings are wrong, or the partner refuses
                                 (400/401/403/404, free plan); the admin must act

Every message is safe to show and log: connectors build it from the partner's reply with the
integration's secrets redacted. The runner decides with ``isinstance``, never by parsing text.
"""

from __future__ import annotations

from cohortsync.domain.errors import CohortsyncError


class DestinationError(CohortsyncError):
    """A call to a partner failed; ``status`` is the HTTP status, if there was a reply."""

    code = "partner_error"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientError(DestinationError):
    """Retrying later may succeed."""

    code = "partner_unavailable"


class RateLimited(TransientError):
    """The partner asked us to slow down; ``retry_after`` is its wish in seconds, if it said."""

    code = "partner_rate_limited"

    def __init__(self, message: str, status: int | None = 429, retry_after: float | None = None):
        super().__init__(message, status)
        self.retry_after = retry_after


class PartnerConfigError(DestinationError):
    """Retrying will not help: the credentials, settings or plan need an admin's attention."""

    code = "partner_refused"
